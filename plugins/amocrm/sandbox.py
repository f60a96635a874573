"""A local emulator of the amoCRM API v4 (``hub sandbox amocrm``): OAuth with rotating refresh tokens, HAL lists,
the 7 requests/s limit with its 429 and 403 ban, problem+json errors, v2 form webhooks, and switchable faults.

Admin endpoints live under ``/_sandbox/`` (reset, seed, stats, faults, webhooks, oauth codes) and are never
rate-limited.
"""

from __future__ import annotations

import asyncio
import base64
import collections
import hashlib
import hmac
import json
import queue
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from .sandbox_account import (
    ELEMENT_TYPES,
    NOTE_PARENTS,
    NOTE_TYPE_CODES,
    Change,
    SandboxAccount,
    TooMany,
    ValidationFailed,
)
from .webhooks import encode_nested_form, parse_nested_form

WEBHOOK_USER_AGENT = "amoCRM-Webhooks/3.0"
OAUTH_PROBLEM = "https://developers.amocrm.ru/v3/errors/OAuthProblemJson"
ERROR_401 = {
    "title": "Unauthorized",
    "type": "https://httpstatus.es/401",
    "status": 401,
    "detail": "Invalid user name or password",
}
ERROR_429 = {
    "title": "Too Many Requests",
    "type": "https://httpstatus.es/429",
    "status": 429,
    "detail": "You have sent too many requests in a given amount of time. Please try again later.",
    "retry_after": 300,
}
ERROR_403 = {
    "title": "Forbidden",
    "type": "https://httpstatus.es/403",
    "status": 403,
    "detail": "Account is blocked for exceeding the request limits; contact support",
}
REFRESH_REVOKED = {
    "hint": "Token has been revoked",
    "title": "Некорректный запрос",
    "type": OAUTH_PROBLEM,
    "status": 401,
    "detail": "В запросе отсутствует ряд параметров или параметры невалидны",
}
GATEWAY_TIMEOUT_HTML = (
    "<html><head><title>504 Gateway Time-out</title></head><body><center><h1>504 Gateway Time-out</h1></center>"
    "<hr><center>nginx</center></body></html>"
)
BAD_GATEWAY_HTML = (
    "<html><head><title>502 Bad Gateway</title></head><body><center><h1>502 Bad Gateway</h1></center>"
    "<hr><center>nginx</center></body></html>"
)


@dataclass
class SandboxOptions:
    """``create_app(**options)`` takes these. ``rate_limit`` requests/s (burst = rate unless given); after
    ``ban_after`` rate-limit violations every request gets 403 until ``/_sandbox/ban/lift``."""

    subdomain: str = "sandbox"
    account_id: int = 31_000_001
    rate_limit: float = 7.0
    burst: int | None = None
    window: bool = False  # count requests in any one second (what amoCRM documents) instead of a leaky bucket
    ban_after: int = 3
    long_lived_token: str | None = None
    client_id: str = "sandbox-client-id"
    client_secret: str = "sandbox-client-secret"
    redirect_uri: str = "https://hub.example/amocrm/oauth"
    access_token_ttl: int = 86_400
    webhook_urls: list[str] = field(default_factory=list)
    collect_webhooks: bool = False
    webhook_timeout: float = 2.0
    clock: Callable[[], float] = time.time


@dataclass
class Fault:
    kind: str  # 5xx, html, batch_504, slow, drop, status
    remaining: int | None = None
    status: int = 500
    threshold: int = 50
    delay: float = 1.0
    body: Any = None
    path: str = "/api/"
    headers: dict[str, str] | None = None  # of a "status" answer: a 429's Retry-After, say


@dataclass
class SentWebhook:
    url: str | None
    body: str
    headers: dict[str, str]
    status: int | None = None


class _Bucket:
    """The server-side 7 requests/s counter: a leaky bucket with a little slack for network jitter."""

    def __init__(self, rate: float, burst: int, clock: Callable[[], float]) -> None:
        self.rate, self.burst, self.clock = rate, burst, clock
        self.level, self.last = 0.0, clock()

    def take(self) -> bool:
        now = self.clock()
        self.level = max(0.0, self.level - (now - self.last) * self.rate)
        self.last = now
        if self.level + 1 > self.burst + 0.5:
            return False
        self.level += 1
        return True


class _Window:
    """The server-side counter as amoCRM documents it: at most ``limit`` requests in any one second."""

    def __init__(self, limit: int, clock: Callable[[], float]) -> None:
        self.limit, self.clock = limit, clock
        self.seen: collections.deque[float] = collections.deque()

    def take(self) -> bool:
        now = self.clock()
        while self.seen and self.seen[0] <= now - 1.0:
            self.seen.popleft()
        if len(self.seen) >= self.limit:
            return False
        self.seen.append(now)
        return True


class Sandbox:
    """The sandbox's state; ``app.state.sandbox`` in the app from :func:`create_app`."""

    def __init__(self, options: SandboxOptions) -> None:
        self.options = options
        self.account = SandboxAccount(account_id=options.account_id, subdomain=options.subdomain, clock=options.clock)
        self.long_lived_token = options.long_lived_token or self.make_jwt(exp_in=5 * 365 * 86_400, kind="long_lived")
        self.webhook_urls: list[str] = list(options.webhook_urls)
        self.sent_webhooks: list[SentWebhook] = []
        self._queue: queue.Queue[tuple[str | None, str]] = queue.Queue()
        self._sender: threading.Thread | None = None
        self.public_url = f"https://{options.subdomain}.amocrm.ru"
        self.reset()

    def reset(self) -> None:
        with self.account.lock:
            self.account.reset()
            self.faults: list[Fault] = []
            self.requests = 0
            self.by_route: dict[str, int] = {}
            self.rate_limited = 0
            self.banned = False
            limit = self.options.burst or max(1, int(self.options.rate_limit))
            self.bucket: _Bucket | _Window = (
                _Window(int(self.options.rate_limit), self.options.clock)
                if self.options.window
                else _Bucket(self.options.rate_limit, limit, self.options.clock)
            )
            self.codes: dict[str, float] = {}
            self.access_tokens: dict[str, float] = {}
            self.refresh_tokens: dict[str, bool] = {}  # token → still unused

    # --- tokens -------------------------------------------------------------------------------------------
    def make_jwt(self, *, exp_in: float, kind: str = "access") -> str:
        """amoCRM tokens are JWTs; clients such as amocrm-api read ``exp`` from them."""
        now = int(self.options.clock())
        header = {"typ": "JWT", "alg": "HS256"}
        payload = {
            "aud": self.options.client_id,
            "jti": secrets.token_hex(16),
            "iat": now,
            "nbf": now,
            "exp": int(now + exp_in),
            "sub": "1",
            "account_id": self.options.account_id,
            "scopes": ["crm", "notifications"],
            "kind": kind,
        }
        signing = f"{_b64(json.dumps(header).encode())}.{_b64(json.dumps(payload).encode())}"
        key = self.options.client_secret.encode()
        return f"{signing}.{_b64(hmac.new(key, signing.encode(), hashlib.sha256).digest())}"

    def issue_code(self) -> str:
        """What the browser consent step hands to the redirect URI: a code valid for 20 minutes, once."""
        code = secrets.token_urlsafe(24)
        self.codes[code] = self.options.clock() + 1200
        return code

    def _pair(self) -> dict[str, Any]:
        access = self.make_jwt(exp_in=self.options.access_token_ttl)
        refresh = secrets.token_urlsafe(48)
        self.access_tokens[access] = self.options.clock() + self.options.access_token_ttl
        self.refresh_tokens[refresh] = True
        return {
            "token_type": "Bearer",
            "expires_in": self.options.access_token_ttl,
            "access_token": access,
            "refresh_token": refresh,
        }

    def token_valid(self, token: str) -> bool:
        if token and hmac.compare_digest(token, self.long_lived_token):
            return True
        expires = self.access_tokens.get(token)
        return expires is not None and expires > self.options.clock()

    # --- webhooks -----------------------------------------------------------------------------------------
    def emit(self, changes: list[Change]) -> None:
        """Queue one v2 form webhook per change; a background thread POSTs them."""
        if not (self.webhook_urls or self.options.collect_webhooks):
            return
        for change in changes:
            body = encode_nested_form(self._webhook_shape(change))
            if self.options.collect_webhooks:
                self.sent_webhooks.append(SentWebhook(None, body, _webhook_headers()))
            for url in self.webhook_urls:
                self._queue.put((url, body))
        if self.webhook_urls and (self._sender is None or not self._sender.is_alive()):
            self._sender = threading.Thread(target=self._send_loop, name="amocrm-sandbox-webhooks", daemon=True)
            self._sender.start()

    def _send_loop(self) -> None:
        with httpx.Client(timeout=self.options.webhook_timeout) as http:
            while True:
                url, body = self._queue.get()
                sent = SentWebhook(url, body, _webhook_headers())
                try:
                    sent.status = http.post(url or "", content=body, headers=sent.headers).status_code
                except httpx.HTTPError:
                    sent.status = None
                self.sent_webhooks.append(sent)
                self._queue.task_done()

    def wait_webhooks(self, timeout: float = 5.0) -> None:
        """Block until every queued webhook has been sent (tests)."""
        deadline = time.monotonic() + timeout
        while self._queue.unfinished_tasks and time.monotonic() < deadline:
            time.sleep(0.01)

    def _webhook_shape(self, change: Change) -> dict[str, Any]:
        record = change.record
        account = {
            "account": {
                "subdomain": self.options.subdomain,
                "id": str(self.options.account_id),
                "_links": {"self": self.public_url},
            }
        }
        if change.entity == "notes":
            note = {
                "id": record["id"],
                "note_type": NOTE_TYPE_CODES.get(record["note_type"], record["note_type"]),
                "element_id": record["entity_id"],
                "element_type": ELEMENT_TYPES.get(record["entity_type"], "1"),
                "text": json.dumps(record["params"], ensure_ascii=False),
                "date_create": record["created_at"],
                "last_modified": record["updated_at"],
                "account_id": record["account_id"],
                "created_by": record["created_by"],
            }
            return {record["entity_type"]: {"note": [{"note": note}]}, **account}
        if change.entity == "tasks":
            task = {
                "id": record["id"],
                "element_id": record.get("entity_id") or "",
                "element_type": ELEMENT_TYPES.get(record.get("entity_type") or "", ""),
                "task_type": record["task_type_id"],
                "text": record["text"],
                "status": int(bool(record["is_completed"])),
                "complete_till": record["complete_till"],
                "date_create": record["created_at"],
                "last_modified": record["updated_at"],
                "account_id": record["account_id"],
            }
            return {"task": {change.action: [task]}, **account}
        item: dict[str, Any] = {"id": record["id"]}
        if change.action != "delete":
            item.update(
                name=record.get("name", ""),
                responsible_user_id=record["responsible_user_id"],
                date_create=record["created_at"],
                last_modified=record["updated_at"],
                created_user_id=record["created_by"],
                modified_user_id=record["updated_by"],
                account_id=record["account_id"],
                created_at=record["created_at"],
                updated_at=record["updated_at"],
            )
            fields = [
                {
                    "id": cf["field_id"],
                    "name": cf["field_name"],
                    "values": [
                        {"value": v["value"], **({"enum": v["enum_id"]} if "enum_id" in v else {})}
                        for v in cf["values"]
                    ],
                    **({"code": cf["field_code"]} if cf["field_code"] else {}),
                }
                for cf in record.get("custom_fields_values") or []
            ]
            if fields:
                item["custom_fields"] = fields
        section = change.entity
        if change.entity in ("contacts", "companies"):
            # Companies travel in the contacts section with type=company.
            section = "contacts"
            item["type"] = "contact" if change.entity == "contacts" else "company"
        if change.entity == "leads" and change.action != "delete":
            item.update(status_id=record["status_id"], pipeline_id=record["pipeline_id"], price=record["price"])
            if change.action == "status":
                item["old_status_id"] = change.old_status_id
        return {section: {change.action: [item]}, **account}

    # --- rendering ----------------------------------------------------------------------------------------
    def href(self, path: str, query: dict[str, Any] | None = None) -> dict[str, str]:
        return {"href": f"{self.public_url}{path}" + (f"?{urlencode(query)}" if query else "")}

    def render(self, entity: str, record: dict[str, Any], with_: set[str]) -> dict[str, Any]:
        out = dict(record)
        out["_links"] = {"self": self.href(f"/api/v4/{entity}/{record['id']}")}
        if entity == "tasks":
            return out
        embedded: dict[str, Any] = {"tags": []}
        others = {"contacts": ("companies",), "companies": ("contacts",), "leads": ("companies", "contacts")}[entity]
        for other in ("contacts", "companies", "leads"):
            if other == entity:
                continue
            if (other in others and other != "contacts") or other in with_:
                ids = self.account.linked(entity, record["id"], other)
                items = [{"id": i, "_links": {"self": self.href(f"/api/v4/{other}/{i}")}} for i in ids]
                if entity == "leads" and other == "contacts":
                    for n, one in enumerate(items):
                        one["is_main"] = n == 0
                embedded[other] = items
        out["_embedded"] = embedded
        return out


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _webhook_headers() -> dict[str, str]:
    return {"content-type": "application/x-www-form-urlencoded", "user-agent": WEBHOOK_USER_AGENT}


def problem(status: int, title: str, detail: str, **extra: Any) -> JSONResponse:
    body = {"title": title, "type": f"https://httpstatus.es/{status}", "status": status, "detail": detail, **extra}
    return JSONResponse(body, status_code=status, media_type="application/problem+json")


# Fields amoCRM requires in each item of a write (docs/plugins/amocrm.md, "Conformance with the account").
REQUIRED_IN_EACH: dict[tuple[str, str], tuple[str, ...]] = {
    ("PATCH", "contacts"): ("id",),
    ("PATCH", "companies"): ("id",),
    ("PATCH", "leads"): ("id",),
    ("POST", "notes"): ("entity_id", "note_type"),
    ("POST", "tasks"): ("text", "complete_till"),
    ("POST", "calls"): ("direction", "phone", "duration", "source"),
}


def _refuse_incomplete(method: str, parts: list[str], body: Any) -> JSONResponse | None:
    """A write whose body is not a non-empty array, or whose items lack a required field, is a 400 as in amoCRM."""
    if method not in ("POST", "PATCH") or not parts or parts[-1] in ("complex",):
        return None
    if parts[:2] == ["leads", "pipelines"] or (method == "PATCH" and len(parts) > 1 and parts[-1] != "notes"):
        return None  # PATCH /entity/{id} takes one object, its id in the path
    if not isinstance(body, list) or not body:
        return validation_problem({"0": [{"code": "NotSupportedChoice", "path": "", "detail": "empty request"}]})
    needed = REQUIRED_IN_EACH.get((method, parts[-1] if parts[-1] in ("notes",) else parts[0]), ())
    errors: dict[str, list[dict[str, str]]] = {}
    for n, item in enumerate(body):
        missing = [f for f in needed if not isinstance(item, dict) or item.get(f) in (None, "")]
        if missing:
            errors[str(n)] = [
                {"code": "NotBlank", "path": f, "detail": "This value should not be blank."} for f in missing
            ]
    return validation_problem(errors) if errors else None


def validation_problem(errors: dict[str, list[dict[str, str]]]) -> JSONResponse:
    return JSONResponse(
        {
            "validation-errors": [{"request_id": rid, "errors": errs} for rid, errs in errors.items()],
            "title": "Bad Request",
            "type": "https://httpstatus.es/400",
            "status": 400,
            "detail": "Request validation failed",
        },
        status_code=400,
        media_type="application/problem+json",
    )


def limit_problem(limit: int) -> JSONResponse:
    return problem(422, "Unprocessable Entity", f"Limit {limit} per page")


class _DroppedConnection(Response):
    """Promise a body, send a fragment, then fail: the client sees the connection drop mid-answer."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"4096")]})
        await send({"type": "http.response.body", "body": b'{"_page":', "more_body": True})
        raise ConnectionAbortedError("sandbox fault: connection dropped")


class _Api:
    """The HTTP handlers; one instance per app."""

    def __init__(self, sandbox: Sandbox) -> None:
        self.sb = sandbox

    async def api(self, request: Request) -> Response:
        sb = self.sb
        raw = await request.body()
        with sb.account.lock:
            sb.public_url = (
                f"https://{sb.options.subdomain}.amocrm.ru"
                if not request.url.port
                else str(request.base_url).rstrip("/")
            )
            sb.requests += 1
            route = f"{request.method} {request.url.path}"
            sb.by_route[route] = sb.by_route.get(route, 0) + 1
            if sb.banned:
                return JSONResponse(ERROR_403, status_code=403, media_type="application/problem+json")
            if not sb.bucket.take():
                sb.rate_limited += 1
                if sb.rate_limited > sb.options.ban_after:
                    sb.banned = True
                    return JSONResponse(ERROR_403, status_code=403, media_type="application/problem+json")
                return JSONResponse(
                    ERROR_429, status_code=429, media_type="application/problem+json", headers={"Retry-After": "300"}
                )
            body: Any = None
            if raw:
                try:
                    body = json.loads(raw)
                except ValueError:
                    return problem(400, "Bad Request", "Request body is not valid JSON")
            fault = self._fault(request, body)
        if fault is not None:
            answer = await self._apply_fault(fault)
            if answer is not None:
                return answer
        auth = request.headers.get("authorization", "")
        with sb.account.lock:
            if not auth.startswith("Bearer ") or not sb.token_valid(auth[7:].strip()):
                return JSONResponse(ERROR_401, status_code=401, media_type="application/problem+json")
            try:
                return self._route(request, body)
            except ValidationFailed as exc:
                return validation_problem(exc.errors)
            except TooMany as exc:
                return limit_problem(exc.limit)

    def _fault(self, request: Request, body: Any) -> Fault | None:
        for fault in self.sb.faults:
            if not request.url.path.startswith(fault.path):
                continue
            if fault.kind == "batch_504" and not (isinstance(body, list) and len(body) > fault.threshold):
                continue
            if fault.remaining is not None:
                fault.remaining -= 1
                if fault.remaining <= 0:
                    self.sb.faults.remove(fault)
            return fault
        return None

    async def _apply_fault(self, fault: Fault) -> Response | None:
        if fault.kind == "slow":
            await asyncio.sleep(fault.delay)
            return None
        if fault.kind == "drop":
            return _DroppedConnection()
        if fault.kind == "batch_504":
            return Response(GATEWAY_TIMEOUT_HTML, status_code=504, media_type="text/html")
        if fault.kind == "html":
            return Response(
                BAD_GATEWAY_HTML, status_code=fault.status if fault.status != 500 else 502, media_type="text/html"
            )
        if fault.kind == "status":
            return JSONResponse(
                fault.body, status_code=fault.status, media_type="application/problem+json", headers=fault.headers
            )
        return problem(fault.status, "Internal Server Error", "Sandbox fault")

    def _route(self, request: Request, body: Any) -> Response:
        parts = request.url.path.rstrip("/").split("/")[3:]  # after /api/v4
        method = request.method
        refused = _refuse_incomplete(method, parts, body)
        if refused is not None:
            return refused
        query = parse_nested_form(request.url.query) if request.url.query else {}
        acc, sb = self.sb.account, self.sb
        if parts == ["account"] and method == "GET":
            return JSONResponse(self._account())
        if parts == ["calls"] and method == "POST":
            added, dropped, changes = acc.add_calls(body)
            sb.emit(changes)
            answer: dict[str, Any] = {"_total_items": len(added), "_embedded": {"calls": added}}
            if dropped:
                answer["errors"] = dropped
            return JSONResponse(answer)
        if parts[:2] == ["leads", "pipelines"]:
            return self._pipelines(parts[2:])
        if parts == ["leads", "complex"] and method == "POST":
            result, changes = acc.add_complex(body)
            sb.emit(changes)
            return JSONResponse(result)
        if parts == ["events"] and method == "GET":
            return self._list("events", [e for e in acc.events if _event_matches(e, query)], query, max_limit=100)
        if len(parts) == 2 and parts[1] == "custom_fields" and parts[0] in acc.fields and method == "GET":
            items = [cf.render(n) for n, cf in enumerate(acc.fields[parts[0]])]
            return self._list(parts[0] + "/custom_fields", items, query, key="custom_fields")
        if parts and parts[0] in NOTE_PARENTS and "notes" in parts:
            return self._notes(parts, method, body, query)
        if parts and parts[0] in acc.records:
            return self._entities(parts, method, body, query)
        return problem(404, "Not Found", f"No such API method: {method} {request.url.path}")

    def _account(self) -> dict[str, Any]:
        sb = self.sb
        return {
            "id": sb.options.account_id,
            "name": "Sandbox",
            "subdomain": sb.options.subdomain,
            "created_at": 1_600_000_000,
            "created_by": 1,
            "updated_at": 1_600_000_000,
            "updated_by": 1,
            "current_user_id": 1,
            "country": "RU",
            "currency": "RUB",
            "currency_symbol": "₽",
            "customers_mode": "disabled",
            "is_unsorted_on": True,
            "is_loss_reason_enabled": True,
            "is_helpbot_enabled": False,
            "is_technical_account": False,
            "contact_name_display_order": 1,
            "_links": {"self": sb.href("/api/v4/account")},
        }

    def _pipelines(self, rest: list[str]) -> Response:
        sb = self.sb
        pipelines = []
        for p in sb.account.pipelines:
            rendered = json.loads(json.dumps(p))
            rendered["account_id"] = sb.options.account_id
            rendered["_links"] = {"self": sb.href(f"/api/v4/leads/pipelines/{p['id']}")}
            for s in rendered["_embedded"]["statuses"]:
                s["account_id"] = sb.options.account_id
                s["_links"] = {"self": sb.href(f"/api/v4/leads/pipelines/{p['id']}/statuses/{s['id']}")}
            pipelines.append(rendered)
        if not rest:
            return JSONResponse(
                {
                    "_total_items": len(pipelines),
                    "_links": {"self": sb.href("/api/v4/leads/pipelines")},
                    "_embedded": {"pipelines": pipelines},
                }
            )
        found = next((p for p in pipelines if str(p["id"]) == rest[0]), None)
        if found is None:
            return Response(status_code=204)
        if rest[1:] == ["statuses"]:
            return JSONResponse({"_total_items": len(found["_embedded"]["statuses"]), "_embedded": found["_embedded"]})
        return JSONResponse(found)

    def _entities(self, parts: list[str], method: str, body: Any, query: dict[str, Any]) -> Response:
        acc, sb = self.sb.account, self.sb
        entity = parts[0]
        with_ = set(str(query.get("with", "")).split(","))
        if len(parts) == 2 and parts[1].isdigit():
            entity_id = int(parts[1])
            record = acc.records[entity].get(entity_id)
            if method == "GET":
                return Response(status_code=204) if record is None else JSONResponse(sb.render(entity, record, with_))
            if method == "PATCH":
                if not isinstance(body, dict):
                    raise ValidationFailed(
                        {"0": [{"code": "InvalidType", "path": "", "detail": "This value should be of type object."}]}
                    )
                result, changes = acc.write(entity, [{**body, "id": entity_id}], update=True)
                sb.emit(changes)
                return JSONResponse({**result[0], "_links": {"self": sb.href(f"/api/v4/{entity}/{entity_id}")}})
        if len(parts) == 1:
            if method == "GET":
                items = [r for r in acc.records[entity].values() if _entity_matches(acc, entity, r, query)]
                items = _ordered(items, query)
                return self._list(entity, items, query, render=lambda r: sb.render(entity, r, with_))
            if method in ("POST", "PATCH"):
                result, changes = acc.write(entity, body, update=method == "PATCH")
                sb.emit(changes)
                for one in result:
                    one["_links"] = {"self": sb.href(f"/api/v4/{entity}/{one['id']}")}
                return JSONResponse({"_links": {"self": sb.href(f"/api/v4/{entity}")}, "_embedded": {entity: result}})
        return problem(405, "Method Not Allowed", f"{method} is not supported here")

    def _notes(self, parts: list[str], method: str, body: Any, query: dict[str, Any]) -> Response:
        acc, sb = self.sb.account, self.sb
        parent = parts[0]
        parent_id = int(parts[1]) if len(parts) >= 3 and parts[1].isdigit() else None
        base = f"/api/v4/{parent}" + (f"/{parent_id}" if parent_id else "") + "/notes"
        if method == "POST":
            result, changes = acc.add_notes(parent, body, parent_id=parent_id)
            sb.emit(changes)
            for one in result:
                one["_links"] = {"self": sb.href(f"/api/v4/{parent}/notes/{one['id']}")}
            return JSONResponse({"_links": {"self": sb.href(base)}, "_embedded": {"notes": result}})
        if method == "GET":
            if parts[-1].isdigit() and parts[-2] == "notes":
                note = acc.notes.get(int(parts[-1]))
                return Response(status_code=204) if note is None else JSONResponse(note)
            notes = [
                n
                for n in acc.notes.values()
                if n["entity_type"] == parent and (parent_id is None or n["entity_id"] == parent_id)
            ]
            wanted = _as_set(_get(query, "filter", "note_type"))
            if wanted:
                notes = [n for n in notes if n["note_type"] in wanted]
            parents = _as_set(_get(query, "filter", "entity_id"))
            if parents:
                notes = [n for n in notes if str(n["entity_id"]) in parents]
            notes = [n for n in notes if _in_range(n["updated_at"], _get(query, "filter", "updated_at"))]
            return self._list(base.removeprefix("/api/v4/"), notes, query, key="notes")
        return problem(405, "Method Not Allowed", f"{method} is not supported here")

    def _list(
        self,
        path: str,
        items: list[dict[str, Any]],
        query: dict[str, Any],
        *,
        key: str | None = None,
        max_limit: int = 250,
        render: Callable[[dict[str, Any]], dict[str, Any]] | None = None,
    ) -> Response:
        """A HAL page: ``_page``, ``_links.self``/``next``, ``_embedded``; 204 with no body when empty."""
        try:
            limit = int(query.get("limit", 50))
            page = int(query.get("page", 1))
        except (TypeError, ValueError):
            return problem(400, "Bad Request", "limit and page must be integers")
        if limit > max_limit:
            return limit_problem(max_limit)
        limit, page = max(1, limit), max(1, page)
        chunk = items[(page - 1) * limit : page * limit]
        if not chunk:
            return Response(status_code=204)
        if render is not None:  # only the page is rendered, however long the list
            chunk = [render(item) for item in chunk]
        sb = self.sb
        keep = {k: v for k, v in _flat_query(query).items() if k not in ("page", "limit")}
        links = {"self": sb.href(f"/api/v4/{path}", {**keep, "page": page, "limit": limit})}
        if page * limit < len(items):
            links["next"] = sb.href(f"/api/v4/{path}", {**keep, "page": page + 1, "limit": limit})
        if page > 1:
            links["prev"] = sb.href(f"/api/v4/{path}", {**keep, "page": page - 1, "limit": limit})
        return JSONResponse({"_page": page, "_links": links, "_embedded": {key or path.rsplit("/", 1)[-1]: chunk}})

    # --- admin --------------------------------------------------------------------------------------------
    async def oauth(self, request: Request) -> Response:
        sb = self.sb
        raw = await request.body()
        try:
            data = (
                json.loads(raw)
                if raw.strip().startswith(b"{")
                else {k: v for k, v in parse_nested_form(raw).items() if isinstance(v, str)}
            )
        except ValueError:
            data = {}
        with sb.account.lock:
            sb.requests += 1
            sb.by_route["POST /oauth2/access_token"] = sb.by_route.get("POST /oauth2/access_token", 0) + 1
            if sb.banned:
                return JSONResponse(ERROR_403, status_code=403, media_type="application/problem+json")
            if data.get("client_id") != sb.options.client_id or data.get("client_secret") != sb.options.client_secret:
                return _oauth_problem(400, "Client authentication failed")
            grant = data.get("grant_type")
            if grant == "authorization_code":
                expires = sb.codes.pop(str(data.get("code")), None)
                if data.get("redirect_uri") != sb.options.redirect_uri:
                    return _oauth_problem(400, "Redirect URI does not match")
                if expires is None or expires < sb.options.clock():
                    return _oauth_problem(400, "Authorization code has been revoked")
                return JSONResponse(sb._pair())
            if grant == "refresh_token":
                token = str(data.get("refresh_token"))
                if not sb.refresh_tokens.get(token):
                    return JSONResponse(REFRESH_REVOKED, status_code=401)
                sb.refresh_tokens[token] = False  # single use
                return JSONResponse(sb._pair())
            return _oauth_problem(400, "Unsupported grant type")

    async def admin(self, request: Request) -> Response:
        sb, action = self.sb, request.path_params["action"]
        payload = await request.json() if (await request.body()).strip() else {}
        with sb.account.lock:
            if action == "reset":
                sb.reset()
                return JSONResponse({"ok": True})
            if action == "stats":
                return JSONResponse(
                    {
                        "requests": sb.requests,
                        "by_route": sb.by_route,
                        "rate_limited": sb.rate_limited,
                        "banned": sb.banned,
                        "webhooks_sent": len(sb.sent_webhooks),
                        "counts": {k: len(v) for k, v in sb.account.records.items()} | {"notes": len(sb.account.notes)},
                    }
                )
            if action == "faults":
                if request.method == "DELETE":
                    sb.faults.clear()
                else:
                    sb.faults.append(Fault(**payload))
                return JSONResponse({"faults": [f.__dict__ for f in sb.faults]})
            if action == "webhooks":
                if request.method == "POST":
                    sb.webhook_urls.append(str(payload["url"]))
                elif request.method == "DELETE":
                    sb.webhook_urls.clear()
                return JSONResponse({"urls": sb.webhook_urls, "sent": len(sb.sent_webhooks)})
            if action == "ban-lift":
                sb.banned, sb.rate_limited = False, 0
                return JSONResponse({"ok": True})
            if action == "oauth-code":
                return JSONResponse({"code": sb.issue_code()})
            if action == "seed":
                return JSONResponse(seed(sb, payload))
            if action == "delete":
                change = sb.account.delete(str(payload["entity"]), int(payload["id"]))
                if change:
                    sb.emit([change])
                return JSONResponse({"deleted": change is not None})
        return problem(404, "Not Found", f"unknown sandbox action {action!r}")


def seed(sb: Sandbox, payload: dict[str, Any]) -> dict[str, list[int]]:
    """Create entities directly (no rate limit); ``{"contacts": 100}`` makes 100 numbered contacts, a list
    gives their API payloads. ``"webhooks": true`` emits webhooks for them."""
    out: dict[str, list[int]] = {}
    for entity in ("companies", "contacts", "leads", "tasks"):
        spec = payload.get(entity)
        if spec is None:
            continue
        items = spec if isinstance(spec, list) else [_numbered(entity, n) for n in range(int(spec))]
        ids: list[int] = []
        for start in range(0, len(items), 250):
            result, changes = sb.account.write(entity, items[start : start + 250], update=False)
            ids += [r["id"] for r in result]
            if payload.get("webhooks"):
                sb.emit(changes)
        out[entity] = ids
    return out


def _numbered(entity: str, n: int) -> dict[str, Any]:
    if entity == "contacts":
        return {
            "name": f"Контакт {n}",
            "custom_fields_values": [
                {"field_code": "PHONE", "values": [{"value": f"+7916{n:07d}", "enum_code": "WORK"}]},
                {"field_code": "EMAIL", "values": [{"value": f"contact{n}@example.ru", "enum_code": "WORK"}]},
            ],
        }
    if entity == "tasks":
        return {"text": f"Задача {n}", "complete_till": 1_900_000_000}
    return {"name": f"{entity[:-1].capitalize()} {n}"}


def _oauth_problem(status: int, hint: str) -> JSONResponse:
    return JSONResponse(
        {
            "hint": hint,
            "title": "Некорректный запрос",
            "type": OAUTH_PROBLEM,
            "status": status,
            "detail": "В запросе отсутствует ряд параметров или параметры невалидны",
        },
        status_code=status,
    )


def _get(query: dict[str, Any], *path: str) -> Any:
    node: Any = query
    for part in path:
        node = node.get(part) if isinstance(node, dict) else None
    return node


def _as_set(value: Any) -> set[str]:
    if value is None:
        return set()
    if isinstance(value, list):
        return {str(v) for v in value}
    return {v for v in str(value).split(",") if v}


def _in_range(value: int, bounds: Any) -> bool:
    if bounds is None:
        return True
    if isinstance(bounds, str):
        return value >= int(bounds)
    if isinstance(bounds, dict):
        if "from" in bounds and value < int(bounds["from"]):
            return False
        if "to" in bounds and value > int(bounds["to"]):
            return False
    return True


def _entity_matches(acc: SandboxAccount, entity: str, record: dict[str, Any], query: dict[str, Any]) -> bool:
    text = query.get("query")
    if isinstance(text, str) and not acc.matches(entity, record, text):
        return False
    ids = _as_set(_get(query, "filter", "id"))
    if ids and str(record["id"]) not in ids:
        return False
    if not _in_range(record["updated_at"], _get(query, "filter", "updated_at")):
        return False
    if entity == "tasks":
        for name in ("entity_type", "entity_id"):
            wanted = _as_set(_get(query, "filter", name))
            if wanted and str(record.get(name)) not in wanted:
                return False
        done = _get(query, "filter", "is_completed")
        if done is not None and bool(int(done)) != bool(record["is_completed"]):
            return False
    return True


def _event_matches(event: dict[str, Any], query: dict[str, Any]) -> bool:
    kinds = _as_set(_get(query, "filter", "type"))
    if kinds and event["type"] not in kinds:
        return False
    entities = _as_set(_get(query, "filter", "entity"))
    if entities and event["entity_type"] not in entities:
        return False
    ids = _as_set(_get(query, "filter", "entity_id"))
    if ids and str(event["entity_id"]) not in ids:
        return False
    return _in_range(event["created_at"], _get(query, "filter", "created_at"))


def _ordered(items: list[dict[str, Any]], query: dict[str, Any]) -> list[dict[str, Any]]:
    order = query.get("order")
    if isinstance(order, dict) and order:
        name, direction = next(iter(order.items()))
        if name in ("id", "updated_at", "created_at"):
            return sorted(items, key=lambda r: (r[name], r["id"]), reverse=direction == "desc")
    return items


def _flat_query(query: dict[str, Any]) -> dict[str, str]:
    out: dict[str, str] = {}

    def walk(prefix: str, value: Any) -> None:
        if isinstance(value, dict):
            for k, v in value.items():
                walk(f"{prefix}[{k}]" if prefix else k, v)
        elif isinstance(value, list):
            for i, v in enumerate(value):
                walk(f"{prefix}[{i}]", v)
        else:
            out[prefix] = str(value)

    walk("", query)
    return out


def create_app(**options: Any) -> Starlette:
    """The sandbox as an ASGI app; ``app.state.sandbox`` is its :class:`Sandbox` (state, helpers)."""
    sandbox = Sandbox(SandboxOptions(**options))
    api = _Api(sandbox)
    app = Starlette(
        routes=[
            Route("/api/v4/{path:path}", api.api, methods=["GET", "POST", "PATCH", "DELETE"]),
            Route("/oauth2/access_token", api.oauth, methods=["POST"]),
            Route("/_sandbox/{action}", api.admin, methods=["GET", "POST", "DELETE"]),
        ]
    )
    app.state.sandbox = sandbox
    # shown by `hub sandbox amocrm`: the only way a person learns the token of a sandbox started from the CLI
    app.state.banner = f"long-lived token (HUB_AMOCRM__LONG_LIVED_TOKEN): {sandbox.long_lived_token}"
    return app


create_app.setup_help = (  # type: ignore[attr-defined]
    'Seed: curl -X POST <url>/_sandbox/seed -d \'{"contacts": 1000, "companies": 100}\'. '
    "Webhooks: set HUB_AMOCRM__BASE_URL=<url>, HUB_AMOCRM__LONG_LIVED_TOKEN (printed at start) and "
    "HUB_AMOCRM__WEBHOOK_SECRET, run the hub, then register its route: curl -X POST <url>/_sandbox/webhooks "
    '-d \'{"url": "http://127.0.0.1:8080/webhooks/amocrm/<secret>"}\'; every change made through the API is '
    "then posted there. Stats: GET <url>/_sandbox/stats; faults: POST <url>/_sandbox/faults."
)
