"""The amoCRM API v4 client: one account, HAL paging, batched writes, error classification and the ban guard.

Authentication comes from a token provider (``LongLivedToken`` or ``OAuthSession`` from ``oauth.py``); the
request pace from an injected ``throttle(n)`` that blocks until ``n`` requests may go (the hub's limiter).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator, Sequence
from typing import Any, Protocol
from urllib.parse import parse_qsl, urlsplit

import httpx
import structlog

from hub.core.errors import ExternalAPIError, FatalDelivery

from .oauth import RECONNECT_HINT, OAuthSession, OAuthTokens, ReconnectRequired

__all__ = [
    "AccountBanned",
    "AmoCRMClient",
    "LongLivedToken",
    "OAuthSession",
    "OAuthTokens",
    "ReconnectRequired",
    "TokenProvider",
]

log = structlog.get_logger("crm_hub_plugins.amocrm")

PAGE_LIMIT = 250
MAX_BATCH = 250
DEFAULT_BATCH = 50


class TokenProvider(Protocol):
    """Where the client gets its Bearer token."""

    def access_token(self) -> str:
        """A token to send now (refreshed first when it is about to expire)."""
        ...

    def renew(self) -> bool:
        """The API answered 401: get a new token if possible and say whether one was obtained."""
        ...


class LongLivedToken:
    """A long-lived token from the account's integration settings: nothing to refresh."""

    def __init__(self, token: str) -> None:
        if not token:
            raise ValueError("empty long-lived token")
        self._token = token

    def access_token(self) -> str:
        return self._token

    def renew(self) -> bool:
        return False

    def __repr__(self) -> str:
        return "LongLivedToken(***)"


class AccountBanned(ExternalAPIError):
    """amoCRM answered 403: the account is blocked (repeated rate-limit violations). No request goes out
    until :meth:`AmoCRMClient.reset_ban` is called, after amoCRM support has lifted the block."""

    def __init__(self, message: str) -> None:
        super().__init__(message, retriable=False, status=403)


class AmoCRMClient:
    """A synchronous client for one amoCRM account.

    ``throttle(n)`` is called before every request (``None``: no client-side pacing, the remote limit decides);
    ``write_batch`` entities go in one write request (at most 250); a 504 on a batch halves it and retries.
    ``requests_sent`` counts HTTP requests, for benchmarks and tests.
    """

    def __init__(
        self,
        base_url: str,
        tokens: TokenProvider | str,
        *,
        http: httpx.Client | None = None,
        throttle: Callable[[int], object] | None = None,
        write_batch: int = DEFAULT_BATCH,
        timeout: float = 30.0,
    ) -> None:
        if not 1 <= write_batch <= MAX_BATCH:
            raise ValueError(f"write_batch must be between 1 and {MAX_BATCH}, not {write_batch}")
        self.base_url = base_url.rstrip("/")
        self.tokens: TokenProvider = LongLivedToken(tokens) if isinstance(tokens, str) else tokens
        self._own_http = http is None
        self.http = http or httpx.Client(timeout=timeout)
        self.throttle = throttle
        self.write_batch = write_batch
        self.requests_sent = 0
        self._ban_reason: str | None = None
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"AmoCRMClient({self.base_url!r})"

    def close(self) -> None:
        if self._own_http:
            self.http.close()

    # --- ban state ----------------------------------------------------------------------------------------
    @property
    def banned(self) -> bool:
        return self._ban_reason is not None

    def reset_ban(self) -> None:
        """Allow requests again (once amoCRM support has lifted the block)."""
        self._ban_reason = None

    def _refuse_if_banned(self) -> None:
        if self._ban_reason is not None:
            raise AccountBanned(
                f"amoCRM account {self.base_url} is blocked ({self._ban_reason}); no request is sent until the "
                "block is lifted by amoCRM support and the client is reset"
            )

    # --- requests -----------------------------------------------------------------------------------------
    def request(
        self,
        method: str,
        path: str,
        *,
        params: dict[str, Any] | Sequence[tuple[str, Any]] | None = None,
        json_body: Any = None,
    ) -> Any:
        """Send one request; return the decoded JSON body, or ``None`` for 204 No Content."""
        renewed = False
        while True:
            response = self._send(method, path, params=params, json_body=json_body)
            if response.status_code == 401 and not renewed:
                renewed = True
                if self.tokens.renew():
                    continue
            return self._decode(method, path, response)

    def _send(self, method: str, path: str, *, params: Any, json_body: Any) -> httpx.Response:
        self._refuse_if_banned()
        if self.throttle is not None:
            self.throttle(1)
        self._refuse_if_banned()
        url = path if path.startswith("http") else f"{self.base_url}{path}"
        headers = {"Authorization": f"Bearer {self.tokens.access_token()}", "Accept": "application/hal+json"}
        with self._lock:
            self.requests_sent += 1
        try:
            return self.http.request(method, url, params=params, json=json_body, headers=headers)
        except httpx.TimeoutException as exc:
            raise ExternalAPIError(f"amoCRM {method} {path} timed out ({type(exc).__name__}); will retry") from exc
        except httpx.TransportError as exc:
            raise ExternalAPIError(
                f"amoCRM {method} {path} failed before an answer ({type(exc).__name__}: {exc}); will retry"
            ) from exc

    def _decode(self, method: str, path: str, response: httpx.Response) -> Any:
        status = response.status_code
        where = f"amoCRM {method} {path}"
        if status == 204:
            return None
        body = _json_or_none(response)
        if 200 <= status < 300:
            if body is None:
                raise ExternalAPIError(
                    f"{where} answered {status} with a body that is not JSON ({_snippet(response)}); will retry",
                    status=status,
                )
            return body
        detail = _problem_detail(body) or _snippet(response)
        if status == 400:
            raise FatalDelivery(f"{where} was rejected as invalid: {detail}; fix the data and replay", status=400)
        if status == 401:
            raise ExternalAPIError(
                f"{where}: amoCRM refused the token ({detail}); check HUB_AMOCRM__LONG_LIVED_TOKEN or {RECONNECT_HINT}",
                retriable=False,
                status=401,
            )
        if status == 402:
            raise ExternalAPIError(
                f"{where}: the account's plan does not allow this ({detail}); renew the plan",
                retriable=False,
                status=402,
            )
        if status == 403:
            self._ban_reason = f"HTTP 403 on {method} {path}: {detail}"
            log.error("amocrm.account_blocked", account=self.base_url, method=method, path=path, detail=detail)
            raise AccountBanned(
                f"{where} answered 403: the account is blocked, usually for exceeding 7 requests/s repeatedly "
                f"({detail}); every request to it is stopped until amoCRM support lifts the block and the client "
                "is reset"
            )
        if status == 404:
            raise FatalDelivery(f"{where}: not found ({detail})", status=404)
        if status == 429:
            retry_after = _retry_after(response, body)
            log.warning("amocrm.rate_limited", account=self.base_url, method=method, path=path, retry_after=retry_after)
            raise ExternalAPIError(
                f"{where} answered 429 Too Many Requests: the 7 requests/s limit was exceeded; waiting "
                f"{retry_after} s. Repeated violations get the account blocked: check HUB_AMOCRM__RATE_LIMIT",
                retry_after=retry_after,
                status=429,
            )
        if status in (413, 422):
            raise FatalDelivery(f"{where} was refused ({status}: {detail})", status=status)
        if status >= 500:
            raise ExternalAPIError(f"{where} failed on amoCRM's side ({status}: {detail}); will retry", status=status)
        raise FatalDelivery(f"{where} answered {status}: {detail}", status=status)

    # --- reads --------------------------------------------------------------------------------------------
    def get(self, path: str, params: dict[str, Any] | None = None) -> Any:
        return self.request("GET", path, params=params)

    def get_entity(self, entity: str, entity_id: int | str, *, with_: Sequence[str] = ()) -> dict[str, Any] | None:
        """One contact, company, lead, task...; ``None`` when it does not exist (204 or 404)."""
        params = {"with": ",".join(with_)} if with_ else None
        try:
            body = self.get(f"/api/v4/{entity}/{entity_id}", params)
        except FatalDelivery as exc:
            if exc.status == 404:
                return None
            raise
        return body if isinstance(body, dict) else None

    def list_pages(
        self, path: str, params: dict[str, Any] | None = None, *, limit: int = PAGE_LIMIT
    ) -> Iterator[dict[str, Any]]:
        """Yield each HAL page of a list, following ``_links.next``; nothing for 204 (an empty list)."""
        query: dict[str, Any] = {**(params or {}), "limit": limit, "page": 1}
        next_path: str = path
        while True:
            page = self.request("GET", next_path, params=query)
            if not isinstance(page, dict):
                return
            yield page
            href = ((page.get("_links") or {}).get("next") or {}).get("href")
            if not href:
                return
            # Keep our own base URL (proxies, sandboxes) and take only the path and query from the link.
            parts = urlsplit(href)
            next_path, query = parts.path, dict(parse_qsl(parts.query, keep_blank_values=True))

    def list_all(
        self, path: str, params: dict[str, Any] | None = None, *, key: str | None = None, limit: int = PAGE_LIMIT
    ) -> Iterator[dict[str, Any]]:
        """Yield every entity of a list: ``/api/v4/contacts`` gives ``_embedded.contacts`` items, 250 a page."""
        key = key or path.rstrip("/").rsplit("/", 1)[-1]
        for page in self.list_pages(path, params, limit=limit):
            yield from (page.get("_embedded") or {}).get(key) or []

    def search(self, entity: str, query: str, *, with_: Sequence[str] = ()) -> list[dict[str, Any]]:
        """Entities of ``entity`` (contacts, companies, leads) whose name, phone or email matches ``query``."""
        params: dict[str, Any] = {"query": query}
        if with_:
            params["with"] = ",".join(with_)
        return list(self.list_all(f"/api/v4/{entity}", params))

    def account(self) -> dict[str, Any]:
        body = self.get("/api/v4/account")
        if not isinstance(body, dict):
            raise ExternalAPIError("amoCRM /api/v4/account answered with no body; will retry")
        return body

    # --- writes -------------------------------------------------------------------------------------------
    def add(self, path: str, items: Sequence[dict[str, Any]], *, batch: int | None = None) -> list[dict[str, Any]]:
        """POST ``items`` in batches; return the created entities (``id``, ``request_id``...) in order."""
        return self._write("POST", path, items, batch)

    def update(self, path: str, items: Sequence[dict[str, Any]], *, batch: int | None = None) -> list[dict[str, Any]]:
        """PATCH ``items`` (each with its ``id``) in batches; return the updated entities in order."""
        return self._write("PATCH", path, items, batch)

    def _write(self, method: str, path: str, items: Sequence[dict[str, Any]], batch: int | None) -> list[Any]:
        size = batch or self.write_batch
        if not 1 <= size <= MAX_BATCH:
            raise ValueError(f"batch must be between 1 and {MAX_BATCH}, not {size}")
        out: list[Any] = []
        for start in range(0, len(items), size):
            out.extend(self._write_chunk(method, path, list(items[start : start + size])))
        return out

    def _write_chunk(self, method: str, path: str, chunk: list[dict[str, Any]]) -> list[Any]:
        try:
            body = self.request(method, path, json_body=chunk)
        except ExternalAPIError as exc:
            # A gateway timeout on a big batch means "too much at once": halve it rather than fail the lot.
            if exc.status == 504 and len(chunk) > 1:
                half = len(chunk) // 2
                log.info("amocrm.batch_halved", path=path, size=len(chunk), to=half)
                return self._write_chunk(method, path, chunk[:half]) + self._write_chunk(method, path, chunk[half:])
            raise
        return _embedded_items(body, path)


def _embedded_items(body: Any, path: str) -> list[Any]:
    if isinstance(body, list):  # /api/v4/leads/complex answers with a plain list
        return body
    if not isinstance(body, dict):
        return []
    embedded = body.get("_embedded") or {}
    key = path.rstrip("/").rsplit("/", 1)[-1]
    items = embedded.get(key)
    if items is None and len(embedded) == 1:
        items = next(iter(embedded.values()))
    return list(items or [])


def _json_or_none(response: httpx.Response) -> Any:
    if not response.content:
        return None
    try:
        return json.loads(response.content)
    except ValueError:
        return None


def _snippet(response: httpx.Response) -> str:
    kind = response.headers.get("content-type", "?").split(";")[0]
    text = response.text[:120].replace("\n", " ")
    return f"{kind}: {text!r}"


def _problem_detail(body: Any) -> str | None:
    """Summarise a problem+json body; validation errors name every bad field by request."""
    if not isinstance(body, dict):
        return None
    parts: list[str] = []
    for request in body.get("validation-errors") or []:
        if not isinstance(request, dict):
            continue
        fields = [
            f"{e.get('path')} ({e.get('code')}: {e.get('detail')})"
            for e in request.get("errors") or []
            if isinstance(e, dict)
        ]
        parts.append(f"request {request.get('request_id')}: " + "; ".join(fields))
    head = " ".join(str(body[k]) for k in ("title", "detail", "hint") if body.get(k))
    return f"{head} [{' | '.join(parts)}]" if parts else (head or None)


def _retry_after(response: httpx.Response, body: Any) -> float | None:
    header = response.headers.get("retry-after")
    if header:
        try:
            return float(header)
        except ValueError:
            pass
    if isinstance(body, dict) and isinstance(body.get("retry_after"), int | float):
        return float(body["retry_after"])
    return None
