"""A local Bitrix24 portal for tests, demos and benchmarks: ``create_app(**options)`` returns a Starlette app.

It speaks the REST API the way Bitrix24 does: webhook URLs (``/rest/<user_id>/<code>/<method>``) and OAuth
(``/rest/<method>?auth=…`` with an expiring token refreshed at ``/oauth/token/``), form or JSON bodies, ``batch`` with
``$result[…]`` references, list paging, the leaky bucket (503 ``QUERY_LIMIT_EXCEEDED``), the operation time limit
(429), outbound events to handlers bound with ``event.bind``, and faults switched on through ``/_sandbox/faults``.
"""

from __future__ import annotations

import asyncio
import json
import queue
import random
import re
import secrets
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from hub.core.formcodec import decode, encode

from .sandbox_crm import Answer, CrmStore, MethodError, _get, _items

QUERY_LIMIT_BODY = {"error": "QUERY_LIMIT_EXCEEDED", "error_description": "Too many requests"}
OPERATION_LIMIT_BODY = {
    "error": "OPERATION_TIME_LIMIT",
    "error_description": "Method is blocked due to operation time limit.",
}
_REFERENCE = re.compile(r"\$result\[([^\]]*)\]((?:\[[^\]]*\])*)")
_TRUE = {"1", "true", "y", "yes"}


@dataclass
class Fault:
    """A switched-on failure: ``status`` (a JSON 5xx), ``html`` (an HTML error page), ``drop`` (the connection
    is cut mid-answer), ``lost`` (the request is carried out, then the connection is cut before the answer: the
    caller cannot tell whether it happened) or ``slow`` (the answer comes ``seconds`` late), for the next
    ``count`` requests; with ``chance`` below 1 each request is hit only with that probability."""

    kind: str
    count: int = 1
    status: int = 500
    seconds: float = 1.0
    methods: list[str] | None = None
    chance: float = 1.0


@dataclass
class LeakyBucket:
    """Bitrix24's request counter: +1 per request, drains ``rate`` a second, refuses above ``burst``."""

    rate: float
    burst: int
    clock: Callable[[], float] = time.monotonic
    level: float = 0.0
    last: float = field(default=-1.0)

    def admit(self) -> bool:
        now = self.clock()
        if self.last >= 0:
            self.level = max(0.0, self.level - (now - self.last) * self.rate)
        self.last = now
        if self.level + 1 > self.burst:
            return False
        self.level += 1
        return True


class _DroppedConnection(Response):
    """Starts an answer, sends part of it, then fails, so the server closes the connection half-way."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"4096")]})
        await send({"type": "http.response.body", "body": b'{"result":', "more_body": True})
        raise ConnectionAbortedError("sandbox fault: connection dropped")


class Bitrix24Sandbox:
    """State and behaviour of one sandbox portal; :func:`create_app` serves it over HTTP.

    Options: ``domain``, ``webhook_user_id`` and ``webhook_code`` (the incoming webhook), ``client_id``,
    ``client_secret`` and ``access_token_ttl`` (OAuth), ``application_token`` and ``member_id`` (sent with events),
    ``rate`` and ``burst`` of the leaky bucket (``rate_limit=False`` turns it off), ``clock`` (monotonic, for the
    bucket), ``wallclock`` (dates and token expiry), ``tz_offset_hours``, ``collect_events`` (keep every outbound
    event in ``events``), ``deliver_events`` (POST them to bound handlers from a background thread), ``faults`` and
    ``seed`` (which requests a fault with a ``chance`` hits).
    """

    def __init__(
        self,
        *,
        domain: str = "sandbox.bitrix24.test",
        webhook_user_id: int = 1,
        webhook_code: str = "sandboxwebhookcode",
        client_id: str = "local.sandbox.app",
        client_secret: str = "sandbox-client-secret",
        access_token_ttl: float = 3600.0,
        application_token: str = "sandbox-application-token",
        member_id: str = "5a6b0c3e1f2d4e5fa6b7c8d9e0f1a2b3",
        rate: float = 2.0,
        burst: int = 50,
        rate_limit: bool = True,
        operation_window: float = 600.0,
        clock: Callable[[], float] = time.monotonic,
        wallclock: Callable[[], float] = time.time,
        tz_offset_hours: int = 3,
        collect_events: bool = True,
        deliver_events: bool = True,
        faults: list[dict[str, Any]] | None = None,
        seed: int = 0,
    ) -> None:
        self.domain = domain
        self.webhook_user_id = webhook_user_id
        self.webhook_code = webhook_code
        self.client_id = client_id
        self.client_secret = client_secret
        self.access_token_ttl = access_token_ttl
        self.application_token = application_token
        self.member_id = member_id
        self.rate_limit = rate_limit
        self.operation_window = operation_window
        self._clock = clock
        self._wallclock = wallclock
        self.collect_events = collect_events
        self.deliver_events = deliver_events
        self.bucket = LeakyBucket(rate, burst, clock)
        self.crm = CrmStore(
            emit=self._emit, wallclock=wallclock, tz_offset_hours=tz_offset_hours, user_id=webhook_user_id
        )
        self.crm.methods.update({"event.bind": self._event_bind, "event.get": self._event_get})
        self.crm.methods["event.unbind"] = self._event_unbind
        self.crm.methods.update(
            {
                "event.offline.get": self._offline_get,
                "event.offline.clear": self._offline_clear,
                "event.offline.error": self._offline_error,
            }
        )
        self.lock = threading.RLock()
        self.rng = random.Random(seed)  # which requests a fault with a ``chance`` hits: the same in every run
        self._outbox: queue.Queue[tuple[str, str]] = queue.Queue()
        self._sender: threading.Thread | None = None
        self._pending = 0
        self._pending_cv = threading.Condition()
        self.reset()
        for spec in faults or []:
            self.add_fault(**spec)

    # --- admin (Python API; the /_sandbox endpoints call these) -----------------------------------------------

    def reset(self) -> None:
        """Forget all data, tokens, bindings, events, faults and counters."""
        with self.lock:
            self.crm.reset()
            self.stats: Counter[str] = Counter()
            self.by_method: Counter[str] = Counter()
            self.faults: list[Fault] = []
            self.events: list[dict[str, Any]] = []
            self.delivery_failures: list[str] = []
            self.bindings: list[dict[str, Any]] = []
            self.offline: list[dict[str, Any]] = []  # the portal's offline event queue
            self.access_tokens: dict[str, float] = {}
            self.refresh_tokens: set[str] = set()
            self.blocked: dict[str, float] = {}
            self.operating: dict[str, tuple[float, float]] = {}
            self.bucket.level = 0.0
            self.bucket.last = -1.0

    @property
    def requests(self) -> int:
        """REST requests received (a batch is one), refused ones included."""
        return self.stats["requests"]

    def webhook_url(self, base_url: str) -> str:
        return f"{base_url.rstrip('/')}/rest/{self.webhook_user_id}/{self.webhook_code}/"

    def add_fault(
        self,
        kind: str,
        count: int = 1,
        status: int = 500,
        seconds: float = 1.0,
        methods: list[str] | None = None,
        chance: float = 1.0,
    ) -> None:
        if kind not in ("status", "html", "drop", "lost", "slow"):
            raise ValueError(f"unknown fault kind {kind!r}: use status, html, drop, lost or slow")
        if not 0.0 < chance <= 1.0:
            raise ValueError(f"chance must be above 0 and at most 1, not {chance}")
        with self.lock:
            listed = [m.lower() for m in methods] if methods else None
            self.faults.append(Fault(kind, count, status, seconds, listed, chance))

    def block_method(self, method: str, seconds: float) -> None:
        """Switch on the operation time limit for ``method`` (429) for ``seconds``."""
        with self.lock:
            until = self._wallclock() + seconds
            self.blocked[method.lower()] = until
            self.operating[method.lower()] = (until - self.operation_window, 480.0)

    def issue_tokens(self, *, ttl: float | None = None) -> dict[str, Any]:
        """A new OAuth token pair, answered in the token endpoint's shape (as after installing the app)."""
        with self.lock:
            access, refresh = secrets.token_hex(16), secrets.token_hex(16)
            lifetime = self.access_token_ttl if ttl is None else ttl
            expires = self._wallclock() + lifetime
            self.access_tokens[access] = expires
            self.refresh_tokens.add(refresh)
            self.stats["tokens_issued"] += 1
            return {
                "access_token": access,
                "client_endpoint": f"https://{self.domain}/rest/",
                "domain": "oauth.bitrix.info",
                "expires": int(expires),
                "expires_in": int(lifetime),
                "member_id": self.member_id,
                "refresh_token": refresh,
                "scope": "crm,telephony,user_brief",
                "server_endpoint": "https://oauth.bitrix.info/rest/",
                "status": "L",
                "user_id": self.webhook_user_id,
            }

    def expire_tokens(self) -> None:
        with self.lock:
            self.access_tokens = {token: 0.0 for token in self.access_tokens}

    def wait_for_deliveries(self, timeout: float = 5.0) -> bool:
        """Block until every queued event has been POSTed (or failed). True when the queue emptied in time."""
        deadline = time.monotonic() + timeout
        with self._pending_cv:
            while self._pending:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._pending_cv.wait(left)
        return True

    # --- events -----------------------------------------------------------------------------------------------

    def _emit(self, event: str, fields: dict[str, Any]) -> None:
        for binding in list(self.bindings):
            if binding["event"] != event:
                continue
            if binding.get("offline"):  # kept on the portal until the application fetches it
                self.offline.append(
                    {
                        "ID": str(self._offline_seq()),
                        "TIMESTAMP_X": datetime.fromtimestamp(self._wallclock()).isoformat(timespec="seconds"),
                        "EVENT_NAME": event,
                        "EVENT_DATA": {"FIELDS": dict(fields)},
                        "EVENT_ADDITIONAL": {"user_id": "1"},
                        "MESSAGE_ID": secrets.token_hex(16),
                        "PROCESS_ID": "",
                        "ERROR": "0",
                    }
                )
                continue
            payload = {
                "event": event,
                "event_handler_id": str(binding["id"]),
                "data": {"FIELDS": fields},
                "ts": str(int(self._wallclock())),
                "auth": {
                    "domain": self.domain,
                    "client_endpoint": f"https://{self.domain}/rest/",
                    "server_endpoint": "https://oauth.bitrix.info/rest/",
                    "member_id": self.member_id,
                    "application_token": self.application_token,
                },
            }
            body = encode(payload)
            if self.collect_events:
                self.events.append({"handler": binding["handler"], "body": body, "payload": payload})
            if self.deliver_events and binding["handler"].startswith(("http://", "https://")):
                self._enqueue(binding["handler"], body)

    def _enqueue(self, url: str, body: str) -> None:
        with self._pending_cv:
            self._pending += 1
        self._outbox.put((url, body))
        if self._sender is None or not self._sender.is_alive():
            self._sender = threading.Thread(target=self._send_events, name="bitrix24-sandbox-events", daemon=True)
            self._sender.start()

    def _send_events(self) -> None:
        with httpx.Client(timeout=5.0) as http:
            while True:
                url, body = self._outbox.get()
                try:
                    headers = {"content-type": "application/x-www-form-urlencoded"}
                    http.post(url, content=body.encode(), headers=headers)
                except httpx.HTTPError as exc:
                    # Bitrix24 does not retry a failed event either: reconciliation has to find the change.
                    self.delivery_failures.append(f"{url}: {type(exc).__name__}")
                finally:
                    with self._pending_cv:
                        self._pending -= 1
                        self._pending_cv.notify_all()

    def _offline_seq(self) -> int:
        self._offline_counter = getattr(self, "_offline_counter", 0) + 1
        return self._offline_counter

    def _offline_get(self, params: dict[str, Any]) -> Answer:
        """event.offline.get: the first events of the queue; ``clear=0`` marks them with a ``process_id`` instead
        of deleting them, so they survive until ``event.offline.clear`` (event_offline_get.php)."""
        limit = max(1, min(1000, int(str(_get(params, "limit") or 50))))
        clear = str(_get(params, "clear") if _get(params, "clear") is not None else "1") != "0"
        process_id = str(_get(params, "process_id") or "") or secrets.token_hex(16)
        want_errors = str(_get(params, "error") or "0") == "1"
        chosen = [
            r for r in self.offline if r["PROCESS_ID"] in ("", process_id) and (r["ERROR"] == "1") == want_errors
        ][:limit]
        if clear:
            self.offline = [r for r in self.offline if r not in chosen]
        else:
            for record in chosen:
                record["PROCESS_ID"] = process_id
        events = [{k: v for k, v in r.items() if k not in ("PROCESS_ID", "ERROR")} for r in chosen]
        return Answer({"process_id": process_id, "events": events})

    def _offline_clear(self, params: dict[str, Any]) -> Answer:
        process_id = str(_get(params, "process_id") or "")
        if not process_id:
            raise MethodError(400, "ERROR_ARGUMENT", "Argument 'process_id' is null or empty")
        ids = {str(i) for i in _items(_get(params, "id"))}
        messages = {str(m) for m in _items(_get(params, "message_id"))}

        def cleared(record: dict[str, Any]) -> bool:
            if record["PROCESS_ID"] != process_id:
                return False
            if ids:
                return record["ID"] in ids
            return not messages or record["MESSAGE_ID"] in messages

        self.offline = [r for r in self.offline if not cleared(r)]
        return Answer(True)

    def _offline_error(self, params: dict[str, Any]) -> Answer:
        process_id = str(_get(params, "process_id") or "")
        if not process_id:
            raise MethodError(400, "ERROR_ARGUMENT", "Argument 'process_id' is null or empty")
        messages = {str(m) for m in _items(_get(params, "message_id"))}
        for record in self.offline:
            if record["PROCESS_ID"] == process_id and record["MESSAGE_ID"] in messages:
                record["ERROR"], record["PROCESS_ID"] = "1", ""
        return Answer(True)

    def _event_bind(self, params: dict[str, Any]) -> Answer:
        event = str(_get(params, "event") or "").upper()
        offline = str(_get(params, "event_type") or "").lower() == "offline"
        handler = str(_get(params, "handler") or ("offline" if offline else ""))
        if not event or not handler:
            raise MethodError(400, "ERROR_ARGUMENT", "Event name and handler are required")
        if any(b["event"] == event and b["handler"] == handler for b in self.bindings):
            raise MethodError(400, "ERROR_CORE", "Handler already binded")
        self.bindings.append(
            {
                "id": len(self.bindings) + 1,
                "event": event,
                "handler": handler,
                "auth_type": str(_get(params, "auth_type") or "0"),
                "offline": 1 if str(_get(params, "event_type") or "").lower() == "offline" else 0,
            }
        )
        return Answer(True)

    def _event_get(self, params: dict[str, Any]) -> Answer:
        return Answer([{k: b.get(k, 0) for k in ("event", "handler", "auth_type", "offline")} for b in self.bindings])

    def _event_unbind(self, params: dict[str, Any]) -> Answer:
        event = str(_get(params, "event") or "").upper()
        handler = _get(params, "handler")
        before = len(self.bindings)
        self.bindings = [
            b for b in self.bindings if not (b["event"] == event and (handler is None or b["handler"] == handler))
        ]
        return Answer({"count": before - len(self.bindings)})

    # --- REST -------------------------------------------------------------------------------------------------

    def time_block(self, started: float, method: str | None = None, *, operating: bool = True) -> dict[str, Any]:
        finished = self._wallclock()
        tz = self.crm.tz
        block: dict[str, Any] = {
            "start": started,
            "finish": finished,
            "duration": finished - started,
            "processing": finished - started,
            "date_start": datetime.fromtimestamp(started, tz).isoformat(timespec="seconds"),
            "date_finish": datetime.fromtimestamp(finished, tz).isoformat(timespec="seconds"),
        }
        if operating and method:
            window_start, used = self.operating.get(method, (started, 0.0))
            if started - window_start > self.operation_window:
                window_start, used = started, 0.0
            used += finished - started
            self.operating[method] = (window_start, used)
            block["operating_reset_at"] = int(window_start + self.operation_window)
            block["operating"] = used
        return block

    def _is_blocked(self, method: str) -> bool:
        until = self.blocked.get(method)
        if until is None:
            return False
        if until <= self._wallclock():
            del self.blocked[method]
            return False
        return True

    def _take_fault(self, method: str) -> Fault | None:
        with self.lock:
            for fault in self.faults:
                if fault.count > 0 and (fault.methods is None or method in fault.methods):
                    if fault.chance < 1.0 and self.rng.random() >= fault.chance:
                        continue
                    fault.count -= 1
                    if fault.count == 0:
                        self.faults.remove(fault)
                    return fault
        return None

    def call(self, method: str, params: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        """Run one method (``batch`` included) without HTTP, auth or limits: ``(status, body)``."""
        started = self._wallclock()
        with self.lock:
            self.by_method[method] += 1
            if self._is_blocked(method):
                self.stats["operation_limited"] += 1
                return 429, dict(OPERATION_LIMIT_BODY)
            try:
                answer = self._batch(params) if method == "batch" else self.crm.dispatch(method, params)
            except MethodError as exc:
                return exc.status, {"error": exc.code, "error_description": exc.description}
            body: dict[str, Any] = {"result": answer.result}
            if answer.next is not None:
                body["next"] = answer.next
            if answer.total is not None:
                body["total"] = answer.total
            body["time"] = self.time_block(started, method)
            return 200, body

    def _batch(self, params: dict[str, Any]) -> Answer:
        halt = str(_get(params, "halt", 0)).lower() in _TRUE
        commands = _get(params, "cmd") or {}
        if isinstance(commands, list):
            commands = {str(i): c for i, c in enumerate(commands)}
        if not isinstance(commands, dict):
            raise MethodError(400, "ERROR_BATCH_METHOD_NOT_ALLOWED", "Parameter 'cmd' must be an array")
        if len(commands) > 50:
            raise MethodError(400, "ERROR_BATCH_LENGTH_EXCEEDED", "Max batch length exceeded")
        results: dict[str, Any] = {}
        errors: dict[str, Any] = {}
        totals: dict[str, Any] = {}
        nexts: dict[str, Any] = {}
        times: dict[str, Any] = {}
        for key, command in commands.items():
            started = self._wallclock()
            method, _, query = str(command).partition("?")
            method = method.strip().lower().removesuffix(".json")
            sub_params = _resolve(decode(query), results)
            self.by_method[method] += 1
            try:
                if method == "batch":
                    raise MethodError(400, "ERROR_BATCH_METHOD_NOT_ALLOWED", "Method is not allowed for batch usage")
                if self._is_blocked(method):
                    raise MethodError(429, OPERATION_LIMIT_BODY["error"], OPERATION_LIMIT_BODY["error_description"])
                answer = self.crm.dispatch(method, sub_params)
            except MethodError as exc:
                errors[key] = {"error": exc.code, "error_description": exc.description}
                if halt:
                    break
                continue
            results[key] = answer.result
            if answer.total is not None:
                totals[key] = answer.total
            if answer.next is not None:
                nexts[key] = answer.next
            times[key] = self.time_block(started, method, operating=False)
        return Answer(
            {
                "result": _php_map(results),
                "result_error": _php_map(errors),
                "result_total": _php_map(totals),
                "result_next": _php_map(nexts),
                "result_time": _php_map(times),
            }
        )

    def refresh(self, params: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        """The token endpoint: ``grant_type=refresh_token`` rotates both tokens (the old refresh token dies)."""
        with self.lock:
            if params.get("client_id") != self.client_id or params.get("client_secret") != self.client_secret:
                return 401, {"error": "invalid_client", "error_description": "Invalid client credentials"}
            if params.get("grant_type") != "refresh_token":
                return 400, {"error": "unsupported_grant_type", "error_description": "Unsupported grant type"}
            token = str(params.get("refresh_token") or "")
            if token not in self.refresh_tokens:
                return 400, {"error": "invalid_grant", "error_description": "Invalid refresh token"}
            self.refresh_tokens.discard(token)
            self.stats["token_refreshes"] += 1
            return 200, self.issue_tokens()

    def check_token(self, token: str) -> dict[str, Any] | None:
        """None when ``token`` is a live access token, else the 401 error body."""
        with self.lock:
            expires = self.access_tokens.get(token)
            if expires is None:
                return {"error": "invalid_token", "error_description": "The access token provided is invalid."}
            if expires <= self._wallclock():
                return {"error": "expired_token", "error_description": "The access token provided has expired."}
            return None


def _php_map(values: dict[str, Any]) -> Any:
    """PHP's json_encode: an empty array is ``[]``, an array keyed 0..n-1 a list, anything else an object."""
    if not values:
        return []
    if list(values) == [str(i) for i in range(len(values))]:
        return list(values.values())
    return values


def _lookup(results: dict[str, Any], key: str, path: str) -> Any:
    node: Any = results[key]
    for part in re.findall(r"\[([^\]]*)\]", path):
        if isinstance(node, list):
            node = node[int(part)]
        elif isinstance(node, dict):
            node = node[part]
        else:
            raise KeyError(part)
    return node


def _resolve(node: Any, results: dict[str, Any]) -> Any:
    """Replace ``$result[key][field]...`` with values of earlier commands; unresolvable references stay as text."""
    if isinstance(node, dict):
        return {k: _resolve(v, results) for k, v in node.items()}
    if isinstance(node, list):
        return [_resolve(v, results) for v in node]
    if not isinstance(node, str) or "$result[" not in node:
        return node

    def value_of(match: re.Match[str]) -> Any:
        try:
            return _lookup(results, match[1], match[2])
        except (KeyError, IndexError, ValueError):
            return None

    whole = _REFERENCE.fullmatch(node)
    if whole:
        found = value_of(whole)
        return node if found is None else found
    return _REFERENCE.sub(lambda m: str(v) if (v := value_of(m)) is not None else m[0], node)


async def _params(request: Request) -> dict[str, Any]:
    params: dict[str, Any] = decode(request.url.query) if request.url.query else {}
    raw = await request.body()
    if raw.strip():
        content_type = request.headers.get("content-type", "")
        if "json" in content_type or raw.lstrip()[:1] == b"{":
            try:
                body = json.loads(raw)
            except ValueError:
                raise MethodError(400, "INVALID_REQUEST", "Invalid JSON body") from None
            if isinstance(body, dict):
                params.update(body)
        else:
            params.update(decode(raw))
    return params


def create_app(**options: Any) -> Starlette:
    """A Starlette app serving one sandbox portal; the :class:`Bitrix24Sandbox` is ``app.state.sandbox``.

    Every keyword goes to :class:`Bitrix24Sandbox` (for fast tests: ``rate=1000, burst=1000``).
    """
    sandbox = Bitrix24Sandbox(**options)

    async def rest(request: Request, method: str, webhook: bool) -> Response:
        method = method.strip().lower().removesuffix(".json")
        with sandbox.lock:
            sandbox.stats["requests"] += 1
        fault = sandbox._take_fault(method)
        if fault is not None:
            sandbox.stats[f"fault_{fault.kind}"] += 1
            if fault.kind == "slow":
                await asyncio.sleep(fault.seconds)
            elif fault.kind == "html":
                page = "<html><head><title>502 Bad Gateway</title></head><body><h1>502 Bad Gateway</h1></body></html>"
                return HTMLResponse(page, status_code=fault.status if fault.status >= 500 else 502)
            elif fault.kind == "drop":
                return _DroppedConnection()
            elif fault.kind == "lost":
                pass  # carried out below; only the answer is lost
            else:
                body = {"error": "INTERNAL_SERVER_ERROR", "error_description": "Internal server error"}
                return JSONResponse(body, status_code=fault.status)
        if sandbox.rate_limit:
            with sandbox.lock:
                admitted = sandbox.bucket.admit()
            if not admitted:
                sandbox.stats["limit_exceeded"] += 1
                return JSONResponse(QUERY_LIMIT_BODY, status_code=503)
        try:
            params = await _params(request)
        except MethodError as exc:
            return JSONResponse({"error": exc.code, "error_description": exc.description}, status_code=exc.status)
        token = params.pop("auth", None)
        if webhook:
            user_id, code = request.path_params["user_id"], request.path_params["code"]
            if user_id != sandbox.webhook_user_id or not secrets.compare_digest(str(code), sandbox.webhook_code):
                body = {"error": "INVALID_CREDENTIALS", "error_description": "Invalid request credentials"}
                return JSONResponse(body, status_code=401)
        else:
            if not token:
                return JSONResponse({"error": "NO_AUTH_FOUND", "error_description": "Wrong authorization data"}, 401)
            problem = sandbox.check_token(str(token))
            if problem is not None:
                return JSONResponse(problem, status_code=401)
        status, body = sandbox.call(method, params)
        if fault is not None and fault.kind == "lost":
            return _DroppedConnection()
        return JSONResponse(body, status_code=status)

    async def webhook_rest(request: Request) -> Response:
        return await rest(request, request.path_params["method"], True)

    async def oauth_rest(request: Request) -> Response:
        return await rest(request, request.path_params["method"], False)

    async def token(request: Request) -> Response:
        params = decode(request.url.query)
        raw = await request.body()
        if raw:
            params.update(decode(raw))
        status, body = sandbox.refresh({k: str(v) for k, v in params.items()})
        return JSONResponse(body, status_code=status)

    async def faults(request: Request) -> Response:
        if request.method == "DELETE":
            with sandbox.lock:
                sandbox.faults.clear()
            return JSONResponse({"faults": []})
        spec = await request.json()
        if "operation_limit" in spec:
            limit = spec["operation_limit"]
            sandbox.block_method(str(limit["method"]), float(limit.get("seconds", 60)))
        else:
            try:
                sandbox.add_fault(**spec)
            except (TypeError, ValueError) as exc:
                return JSONResponse({"error": str(exc)}, status_code=400)
        return JSONResponse({"faults": [f.__dict__ for f in sandbox.faults], "blocked": sandbox.blocked})

    async def reset(request: Request) -> Response:
        sandbox.reset()
        return JSONResponse({"ok": True})

    async def seed(request: Request) -> Response:
        spec = await request.json()
        ids = sandbox.crm.seed_contacts(int(spec.get("contacts", 0)))
        for company in spec.get("companies", []):
            ids.append(sandbox.crm.add("company", company, emit=False))
        return JSONResponse({"created": len(ids), "ids": ids[:1000]})

    async def stats(request: Request) -> Response:
        with sandbox.lock:
            body = {
                **sandbox.stats,
                "requests": sandbox.requests,
                "by_method": dict(sandbox.by_method),
                "records": {kind: len(rows) for kind, rows in sandbox.crm.records.items()},
                "bucket_level": sandbox.bucket.level,
            }
        return JSONResponse(body)

    async def events(request: Request) -> Response:
        if request.method == "DELETE":
            sandbox.events.clear()
        return JSONResponse({"events": sandbox.events})

    async def tokens(request: Request) -> Response:
        if request.url.path.endswith("/expire"):
            sandbox.expire_tokens()
            return JSONResponse({"ok": True})
        return JSONResponse(sandbox.issue_tokens())

    rest_methods = ["GET", "POST"]
    app = Starlette(
        routes=[
            Route("/rest/{user_id:int}/{code}/{method}", webhook_rest, methods=rest_methods),
            Route("/rest/{user_id:int}/{code}/{method}/", webhook_rest, methods=rest_methods),
            Route("/rest/{method}", oauth_rest, methods=rest_methods),
            Route("/rest/{method}/", oauth_rest, methods=rest_methods),
            Route("/oauth/token/", token, methods=rest_methods),
            Route("/oauth/token", token, methods=rest_methods),
            Route("/_sandbox/faults", faults, methods=["POST", "DELETE"]),
            Route("/_sandbox/reset", reset, methods=["POST"]),
            Route("/_sandbox/seed", seed, methods=["POST"]),
            Route("/_sandbox/stats", stats, methods=["GET"]),
            Route("/_sandbox/events", events, methods=["GET", "DELETE"]),
            Route("/_sandbox/tokens", tokens, methods=["POST"]),
            Route("/_sandbox/tokens/expire", tokens, methods=["POST"]),
        ]
    )
    app.state.sandbox = sandbox

    def banner(base_url: str) -> str:
        # shown by `hub sandbox bitrix24`: the two settings a hub needs to talk to this portal and accept its events
        return (
            f"incoming webhook (HUB_BITRIX24__WEBHOOK_URL): {sandbox.webhook_url(base_url)}\n"
            f"application token (HUB_BITRIX24__APPLICATION_TOKEN): {sandbox.application_token}"
        )

    app.state.banner = banner
    return app


create_app.setup_help = (  # type: ignore[attr-defined]
    "Seed: curl -X POST <url>/_sandbox/seed -d '{\"contacts\": 1000}' (numbered contacts with phones and emails). "
    "Live events: set HUB_BITRIX24__WEBHOOK_URL and HUB_BITRIX24__APPLICATION_TOKEN to the values printed at start, "
    "run the hub, then `hub bitrix24 bind --url http://127.0.0.1:8080/webhooks/bitrix24`; the sandbox then posts "
    "ONCRM* events there. Stats: GET <url>/_sandbox/stats; faults: POST <url>/_sandbox/faults."
)
