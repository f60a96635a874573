"""HTTP security of the hub, in one ASGI middleware: who may ask, from where, in what form, how often.

In order, for every request: the ``Host`` must be one of the hub's names (DNS rebinding); a client address
that failed authentication too often gets 429; a state-changing request from a browser must come from the hub's
own origin (or an allowed one); a state-changing API request with a body must be ``application/json``;
``/api/*`` needs the API token when one is configured (:func:`authenticate`). Every response gets the security
headers; reads of client data are written to the access log (``hub.access``) when it is on.
"""

from __future__ import annotations

import ipaddress
import json
import socket
import time
from collections import OrderedDict
from typing import Any

import structlog
from starlette.datastructures import Headers, MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from hub.core.auth import ANONYMOUS, Authenticator, Principal, StaticToken, bearer_token
from hub.core.errors import ConfigError
from hub.core.ratelimit import RateSpec
from hub.core.settings import HttpSettings

log = structlog.get_logger("hub.web.security")
access_log = structlog.get_logger("hub.access")

LOOPBACK_NAMES = ("localhost", "127.0.0.1", "::1")
STATE_CHANGING = frozenset({"POST", "PUT", "PATCH", "DELETE"})
API_CSP = "default-src 'none'; frame-ancestors 'none'"
UNCHECKED_HOST_PATHS = ("/healthz",)  # liveness probes come with whatever Host the orchestrator uses
ACCESS_LOG_BODY_CAP = 8 * 1024 * 1024


# --- where the hub may listen -----------------------------------------------------------------------------------
def is_loopback(host: str) -> bool:
    """Whether ``host`` (an address or a name) only ever means this machine."""
    name = host.strip().strip("[]")
    if name.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        pass
    try:
        addresses = {info[4][0] for info in socket.getaddrinfo(name, None)}
    except OSError:
        return False
    return bool(addresses) and all(ipaddress.ip_address(str(a).split("%")[0]).is_loopback for a in addresses)


def check_listen_address(settings: HttpSettings, host: str) -> None:
    """Refuse to listen beyond loopback without an API token, unless the operator said so explicitly (loudly)."""
    if is_loopback(host) or settings.api_token is not None:
        return
    if not settings.allow_remote_without_token:
        raise ConfigError(
            f"refusing to listen on {host} without an API token: anyone who reaches the port could read and change "
            "every client. Set HUB_HTTP__API_TOKEN (16+ characters, e.g. python -c 'import secrets; "
            "print(secrets.token_urlsafe(32))'), or listen on 127.0.0.1, or set "
            "HUB_HTTP__ALLOW_REMOTE_WITHOUT_TOKEN=true if a proxy in front authenticates every request"
        )
    log.warning(
        "LISTENING BEYOND LOOPBACK WITHOUT AN API TOKEN: anyone who reaches this port can read and change every "
        "client (HUB_HTTP__ALLOW_REMOTE_WITHOUT_TOKEN=true); set HUB_HTTP__API_TOKEN",
        host=host,
    )


# --- host names ---------------------------------------------------------------------------------------------------
class HostNames:
    """The names the hub answers to: loopback, the bind address when it is specific, and ``allowed_hosts``."""

    def __init__(self, settings: HttpSettings) -> None:
        names = {*LOOPBACK_NAMES, *(n.strip().lower().rstrip(".") for n in settings.allowed_hosts)}
        bind = settings.host.strip().strip("[]").lower()
        if bind not in ("0.0.0.0", "::", ""):
            names.add(bind)
        self.any = "*" in names
        self.suffixes = tuple(n[1:] for n in names if n.startswith("*."))
        self.exact = frozenset(n for n in names if not n.startswith("*"))

    @staticmethod
    def name_of(host_header: str) -> str:
        host = host_header.strip().lower()
        if host.startswith("["):
            return host[1 : host.find("]")] if "]" in host else host
        if host.count(":") == 1:
            host = host.split(":", 1)[0]
        return host.rstrip(".")

    def allows(self, host_header: str | None) -> bool:
        if not host_header:
            return False
        if self.any:
            return True
        name = self.name_of(host_header)
        return name in self.exact or any(name.endswith(suffix) for suffix in self.suffixes)


# --- failed authentication --------------------------------------------------------------------------------------
class FailedAuthLimit:
    """A leaky bucket of failed authentications per client address (``"10/min burst 10"``).

    While an address's bucket is full, its requests to ``/api/`` and ``/webhooks/`` get 429: guessing a token or a
    secret path costs time. Only the most recent ``max_clients`` addresses are remembered (bounded memory).
    """

    def __init__(self, spec: str, *, max_clients: int = 10_000, clock: Any = time.monotonic) -> None:
        self.spec = RateSpec.parse(spec)
        self.max_clients = max_clients
        self.clock = clock
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()

    def _level(self, client: str, now: float) -> float:
        level, last = self._buckets.get(client, (0.0, now))
        return max(0.0, level - (now - last) * self.spec.rate)

    def retry_after(self, client: str) -> float:
        """Seconds until ``client`` may try again (0 when it may now)."""
        if client not in self._buckets:
            return 0.0
        level = self._level(client, self.clock())
        return 0.0 if level + 1 <= self.spec.burst else (level + 1 - self.spec.burst) / self.spec.rate

    def failed(self, client: str) -> None:
        now = self.clock()
        self._buckets[client] = (self._level(client, now) + 1, now)
        self._buckets.move_to_end(client)
        while len(self._buckets) > self.max_clients:
            self._buckets.popitem(last=False)


# --- the one API authentication -----------------------------------------------------------------------------------
def authenticate(authenticator: Authenticator | None, authorization: str | None) -> Principal | None:
    """The principal an API request acts as, or ``None`` when it must be refused (401).

    With no authenticator (no token configured; the hub then listens on loopback only) every request is
    ``anonymous``. This is the one place the API checks credentials: a per-user token store is another
    :class:`hub.core.auth.Authenticator`.
    """
    if authenticator is None:
        return ANONYMOUS
    token = bearer_token(authorization)
    return authenticator.authenticate(token) if token else None


def _is_json(content_type: str) -> bool:
    media = content_type.split(";", 1)[0].strip().lower()
    return media == "application/json" or (media.startswith("application/") and media.endswith("+json"))


def _counted(body: bytes) -> int | None:
    try:
        data = json.loads(body)
    except ValueError:
        return None
    if isinstance(data, dict) and isinstance(data.get("items"), list):
        return len(data["items"])
    if isinstance(data, list):
        return len(data)
    return 1 if isinstance(data, dict) else None


class HttpSecurity:
    """The middleware; see the module docstring for what it enforces, in that order."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        settings: HttpSettings,
        authenticator: Authenticator | None,
        access_log_on: bool,
    ) -> None:
        self.app = app
        self.settings = settings
        self.hosts = HostNames(settings)
        self.origins = frozenset(o.strip().rstrip("/").lower() for o in settings.allowed_origins)
        self.authenticator = authenticator
        self.failures = FailedAuthLimit(settings.auth_failures)
        self.access_log_on = access_log_on

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "websocket":
            headers = Headers(scope=scope)
            host, origin = headers.get("host"), headers.get("origin")
            if not self.hosts.allows(host) or (origin is not None and not self._origin_allowed(origin, host)):
                await send({"type": "websocket.close", "code": 1008})  # no cross-site WebSocket hijacking
                return
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        method: str = scope["method"]
        headers = Headers(scope=scope)
        client = scope["client"][0] if scope.get("client") else "unknown"
        guarded = path.startswith(("/api/", "/webhooks/"))
        refusal = self._refusal(path, method, headers, client, guarded)
        if refusal is not None:
            await self._refuse(scope, send, *refusal)
            return
        principal = ANONYMOUS
        if path.startswith("/api/"):
            found = authenticate(self.authenticator, headers.get("authorization"))
            if found is None:
                self.failures.failed(client)
                log.warning("authentication failed", client=client, path=path)
                await self._refuse(
                    scope, send, 401, "unauthorized", "send 'Authorization: Bearer <HUB_HTTP__API_TOKEN>'"
                )
                return
            principal = found
        scope.setdefault("state", {})["principal"] = principal
        await self.app(scope, receive, self._sender(scope, send, client, principal))

    def _refusal(
        self, path: str, method: str, headers: Headers, client: str, guarded: bool
    ) -> tuple[int, str, str] | tuple[int, str, str, dict[str, str]] | None:
        host = headers.get("host")
        if path not in UNCHECKED_HOST_PATHS and not self.hosts.allows(host):
            log.warning("request for an unknown host refused", host=host, client=client, path=path)
            return 400, "unknown_host", "this hub does not answer to that Host; add it to HUB_HTTP__ALLOWED_HOSTS"
        if guarded:
            wait = self.failures.retry_after(client)
            if wait > 0:
                return (
                    429,
                    "too_many_failures",
                    "too many failed authentications from this address; try again later",
                    {"Retry-After": str(max(1, round(wait)))},
                )
        if method in STATE_CHANGING:
            origin = headers.get("origin")
            if origin is not None and not self._origin_allowed(origin, host):
                log.warning("cross-origin request refused", origin=origin, client=client, path=path)
                return 403, "cross_origin", "state-changing requests from other web origins are refused"
            if path.startswith("/api/"):
                content_type = headers.get("content-type")
                has_body = headers.get("content-length", "0") != "0" or "transfer-encoding" in headers
                if (content_type is not None or has_body) and not _is_json(content_type or ""):
                    return 415, "unsupported_media_type", "send the body as JSON with 'Content-Type: application/json'"
        return None

    def _origin_allowed(self, origin: str, host: str | None) -> bool:
        origin = origin.strip().rstrip("/").lower()
        if origin in self.origins:
            return True
        if "://" not in origin or host is None:
            return False  # "null" (a sandboxed frame, a file) is nobody's origin
        return origin.split("://", 1)[1] == host.strip().lower()

    async def _refuse(
        self, scope: Scope, send: Send, status: int, code: str, detail: str, extra: dict[str, str] | None = None
    ) -> None:
        body = json.dumps({"error": code, "detail": detail}).encode()
        headers = MutableHeaders(
            raw=[(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
        )
        for name, value in (extra or {}).items():
            headers[name] = value
        self._secure(headers, scope["path"])
        await send({"type": "http.response.start", "status": status, "headers": headers.raw})
        await send({"type": "http.response.body", "body": body})

    def _secure(self, headers: MutableHeaders, path: str) -> None:
        headers.setdefault("X-Content-Type-Options", "nosniff")
        headers.setdefault("X-Frame-Options", "DENY")
        headers.setdefault("Referrer-Policy", "no-referrer")
        page = headers.get("content-type", "").startswith("text/html")
        headers.setdefault("Content-Security-Policy", self.settings.content_security_policy if page else API_CSP)
        if path.startswith("/api/"):
            headers.setdefault("Cache-Control", "no-store")  # client data stays out of shared caches

    def _sender(self, scope: Scope, send: Send, client: str, principal: Principal) -> Send:
        path = scope["path"]
        logged = self.access_log_on and scope["method"] == "GET" and path.startswith("/api/")
        state: dict[str, Any] = {"status": 0, "body": bytearray(), "json": False, "done": False}

        async def secured(message: Message) -> None:
            if message["type"] == "http.response.start":
                state["status"] = status = message["status"]
                headers = MutableHeaders(scope=message)
                self._secure(headers, path)
                if status == 401 or (status == 404 and path.startswith("/webhooks/")):
                    # a wrong signature or token, a guessed secret path, a webhook that does not exist
                    self.failures.failed(client)
                if logged and 200 <= status < 300:
                    state["json"] = _is_json(headers.get("content-type", ""))
                    if not state["json"]:
                        count = headers.get("x-hub-clients")
                        self._log_access(scope, client, principal, status, int(count) if count else None)
                        state["done"] = True
            elif message["type"] == "http.response.body" and logged and state["json"] and not state["done"]:
                body: bytearray = state["body"]
                if len(body) < ACCESS_LOG_BODY_CAP:
                    body += message.get("body", b"")
                if not message.get("more_body", False):
                    state["done"] = True
                    counted = _counted(bytes(body)) if len(body) < ACCESS_LOG_BODY_CAP else None
                    self._log_access(scope, client, principal, state["status"], counted)
            await send(message)

        return secured

    @staticmethod
    def _log_access(scope: Scope, client: str, principal: Principal, status: int, count: int | None) -> None:
        route = scope.get("route")
        access_log.info(
            "client data read",
            principal=str(principal),
            client=client,
            method=scope["method"],
            route=getattr(route, "path", None) or scope["path"],
            path=scope["path"],
            status=status,
            count=count,
        )


def install_security(app: Any, hub: Any, authenticator: Authenticator | None = None) -> None:
    """Put :class:`HttpSecurity` in front of ``app``; the API token of the settings unless ``authenticator``."""
    http: HttpSettings = hub.settings.http
    if authenticator is None and http.api_token is not None:
        authenticator = StaticToken(http.api_token)
    access_on = http.access_log if http.access_log is not None else bool(hub.store.is_postgres)
    app.add_middleware(HttpSecurity, settings=http, authenticator=authenticator, access_log_on=access_on)
