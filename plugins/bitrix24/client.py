"""The Bitrix24 REST client: one place for auth (webhook or OAuth), batching, list paging and error handling.

It imports nothing of the hub but its error types, so it can be used and tested on its own. Rate limiting is not
done here: the caller passes ``throttle(n)`` (the hub's leaky bucket) and it is called before every HTTP request.
"""

from __future__ import annotations

import contextlib
import logging
import random
import re
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol
from urllib.parse import urlsplit

import httpx

from hub.core.errors import ExternalAPIError, FatalDelivery
from hub.core.formcodec import encode

MAX_BATCH = 50
PAGE_SIZE = 50
DEFAULT_OAUTH_URL = "https://oauth.bitrix.info/oauth/token/"
_WEBHOOK = re.compile(r"^(?P<base>https?://[^/]+/rest/(?P<user>\d+)/)(?P<code>[^/]+)/?$")
_WEBHOOK_IN_TEXT = re.compile(r"(/rest/\d+/)[^/\s\"']+")

log = logging.getLogger(__name__)


_SECRET_PARAMS = re.compile(r"((?:client_secret|refresh_token|access_token|auth)=)[^&\s\"']+")


def _redact(text: str) -> str:
    return _SECRET_PARAMS.sub(r"\1***", _WEBHOOK_IN_TEXT.sub(r"\1***", text))


class _RedactSecrets(logging.Filter):
    """httpx logs every request URL: a webhook URL carries its code in the path, a token refresh its secrets in
    the query string."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.args:
            args = record.args if isinstance(record.args, tuple) else (record.args,)
            record.args = tuple(_redact(str(arg)) if isinstance(arg, str | httpx.URL) else arg for arg in args)
        return True


_redaction_installed = False


def _install_redaction() -> None:
    global _redaction_installed
    if not _redaction_installed:
        logging.getLogger("httpx").addFilter(_RedactSecrets())
        _redaction_installed = True


def mask_webhook(url: str) -> str:
    """The webhook URL with its secret code replaced by ``***``, safe to log and show."""
    return _WEBHOOK_IN_TEXT.sub(r"\1***", url)


@dataclass(frozen=True)
class Bitrix24Error:
    """One failed command of a ``batch``: Bitrix24's error code and description."""

    code: str
    description: str


@dataclass(frozen=True)
class OAuthTokens:
    """An OAuth token pair as the token endpoint returns it. ``expires_at`` is a Unix time."""

    access_token: str = field(repr=False)
    refresh_token: str = field(repr=False)
    expires_at: float
    client_endpoint: str = ""
    member_id: str = ""
    domain: str = ""
    scope: str = ""

    @classmethod
    def from_response(cls, data: Mapping[str, Any], *, now: float | None = None) -> OAuthTokens:
        """Build from the token endpoint's JSON (``expires`` when given, else now + ``expires_in``)."""
        now = time.time() if now is None else now
        if "access_token" not in data or "refresh_token" not in data:
            raise ExternalAPIError("Bitrix24 token endpoint answered without tokens", retriable=False)
        expires = data.get("expires")
        expires_at = float(expires) if expires else now + float(data.get("expires_in") or 3600)
        return cls(
            access_token=str(data["access_token"]),
            refresh_token=str(data["refresh_token"]),
            expires_at=expires_at,
            client_endpoint=str(data.get("client_endpoint") or ""),
            member_id=str(data.get("member_id") or ""),
            domain=str(data.get("domain") or ""),
            scope=str(data.get("scope") or ""),
        )


class TokenProvider(Protocol):
    """Supplies a valid access token for OAuth calls and refreshes it when Bitrix24 says it expired."""

    @property
    def endpoint(self) -> str:
        """The portal's REST base, ``https://<portal>/rest/``."""
        ...

    def access_token(self) -> str: ...

    def refresh(self, rejected: str | None = None) -> str: ...


class OAuthSession:
    """OAuth tokens of one portal, refreshed through Bitrix24's token endpoint.

    Access tokens live an hour and refresh tokens 180 days; both rotate on refresh. The new pair is handed to
    ``on_tokens`` and used only after that callback returned, so a crash right after a refresh never loses the only
    valid refresh token. A token about to expire (within ``refresh_margin`` seconds) is refreshed before use.
    """

    def __init__(
        self,
        *,
        client_id: str,
        client_secret: str,
        tokens: OAuthTokens,
        on_tokens: Callable[[OAuthTokens], None],
        portal: str | None = None,
        oauth_url: str = DEFAULT_OAUTH_URL,
        http: httpx.Client | None = None,
        refresh_margin: float = 60.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._client_id = client_id
        self._client_secret = client_secret
        self._tokens = tokens
        self._on_tokens = on_tokens
        self._portal = portal
        self._oauth_url = oauth_url
        self._http = http or httpx.Client(timeout=30.0)
        self._margin = refresh_margin
        self._clock = clock
        self._lock = threading.Lock()
        self.refreshes = 0
        _install_redaction()

    def __repr__(self) -> str:
        return f"OAuthSession(endpoint={self.endpoint!r}, client_id={self._client_id!r})"

    @property
    def tokens(self) -> OAuthTokens:
        return self._tokens

    @property
    def endpoint(self) -> str:
        if self._portal:
            base = self._portal if "://" in self._portal else f"https://{self._portal}"
            return base.rstrip("/") + ("/" if base.rstrip("/").endswith("/rest") else "/rest/")
        if not self._tokens.client_endpoint:
            raise ExternalAPIError("Bitrix24 OAuth tokens carry no client_endpoint; set the portal", retriable=False)
        return self._tokens.client_endpoint.rstrip("/") + "/"

    def access_token(self) -> str:
        with self._lock:
            if self._tokens.expires_at - self._margin <= self._clock():
                self._refresh_locked()
            return self._tokens.access_token

    def refresh(self, rejected: str | None = None) -> str:
        """Refresh now, unless another thread already replaced the ``rejected`` token."""
        with self._lock:
            if rejected is None or rejected == self._tokens.access_token:
                self._refresh_locked()
            return self._tokens.access_token

    def _refresh_locked(self) -> None:
        params = {
            "grant_type": "refresh_token",
            "client_id": self._client_id,
            "client_secret": self._client_secret,
            "refresh_token": self._tokens.refresh_token,
        }
        try:
            response = self._http.get(self._oauth_url, params=params)
        except httpx.HTTPError as exc:
            raise ExternalAPIError(f"Bitrix24 token refresh failed: {type(exc).__name__}", retriable=True) from None
        data = _json_or_none(response)
        if response.status_code >= 500 or data is None:
            raise ExternalAPIError(
                f"Bitrix24 token endpoint answered HTTP {response.status_code}; will retry",
                retriable=True,
                status=response.status_code,
            )
        if response.status_code != 200 or "error" in data:
            raise FatalDelivery(
                f"Bitrix24 refused to refresh the OAuth token ({data.get('error', response.status_code)}): "
                "reconnect the application to the portal",
                status=response.status_code,
            )
        tokens = OAuthTokens.from_response(data, now=self._clock())
        if not tokens.client_endpoint:
            tokens = OAuthTokens(**{**tokens.__dict__, "client_endpoint": self._tokens.client_endpoint})
        # Store durably first: the old refresh token is already dead on Bitrix24's side.
        self._on_tokens(tokens)
        self._tokens = tokens
        self.refreshes += 1


@dataclass
class BatchResult:
    """One ``batch`` answer, empty maps normalised to ``{}`` (Bitrix24 serialises them as ``[]``)."""

    results: dict[str, Any]
    errors: dict[str, Bitrix24Error]
    totals: dict[str, int]
    nexts: dict[str, int]


def _json_or_none(response: httpx.Response) -> dict[str, Any] | None:
    try:
        data = response.json()
    except ValueError:
        return None
    return data if isinstance(data, dict) else None


def _as_map(value: Any) -> dict[str, Any]:
    if isinstance(value, dict):
        return value
    if isinstance(value, list):
        return {str(i): v for i, v in enumerate(value)}
    return {}


def _default_backoff(attempt: int, retry_after: float | None = None) -> float:
    bound = min(30.0, 0.5 * (2 ** (attempt - 1)))
    delay = random.uniform(bound / 2, bound)
    return max(delay, retry_after or 0.0)


class Bitrix24Client:
    """Calls Bitrix24 REST methods for one portal.

    ``portal`` is an incoming-webhook URL (``https://<portal>/rest/<user_id>/<code>/``) or a :class:`TokenProvider`
    for OAuth. ``throttle(n)`` is called before each HTTP request (``n`` = 1; a ``batch`` is one request);
    ``on_limit_exceeded()`` is called when Bitrix24 still answers ``QUERY_LIMIT_EXCEEDED`` so the bucket can be
    treated as full. Transient failures (5xx, HTML pages, timeouts, dropped connections) are retried ``retries``
    times with ``backoff(attempt)`` seconds between them, then raised as retriable :class:`ExternalAPIError`.
    ``requests`` counts the HTTP requests made.
    """

    def __init__(
        self,
        portal: str | TokenProvider,
        *,
        http: httpx.Client | None = None,
        throttle: Callable[[int], Any] | None = None,
        on_limit_exceeded: Callable[[], Any] | None = None,
        timeout: float = 30.0,
        retries: int = 3,
        backoff: Callable[[int, float | None], float] = _default_backoff,
        sleep: Callable[[float], None] = time.sleep,
        operation_limit_wait: float = 60.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._tokens: TokenProvider | None = None
        if isinstance(portal, str):
            match = _WEBHOOK.match(portal.strip())
            if not match:
                host = urlsplit(portal.strip()).hostname or "?"
                raise ValueError(
                    f"not a Bitrix24 incoming-webhook URL (host {host}, rest of the value not shown); expected "
                    "https://<portal>/rest/<user_id>/<code>/"
                )
            self._endpoint = f"{match['base']}{match['code']}/"
        else:
            self._tokens = portal
            self._endpoint = ""
        self._http = http or httpx.Client(timeout=timeout)
        self._timeout = timeout
        self._throttle = throttle or (lambda n: None)
        self._on_limit_exceeded = on_limit_exceeded
        self._retries = retries
        self._backoff = backoff
        self._sleep = sleep
        self._operation_limit_wait = operation_limit_wait
        self._clock = clock
        self._blocked_until: dict[str, float] = {}
        self._reset_at: dict[str, float] = {}
        self._lock = threading.Lock()
        self.requests = 0
        self.limit_exceeded = 0
        _install_redaction()

    def __repr__(self) -> str:
        return f"Bitrix24Client({mask_webhook(self.endpoint)!r})"

    @property
    def endpoint(self) -> str:
        return self._tokens.endpoint if self._tokens else self._endpoint

    @property
    def account(self) -> str:
        """The portal's host name, e.g. ``acme.bitrix24.ru``: the ``account`` of every SourceRef."""
        return urlsplit(self.endpoint).hostname or ""

    # --- single calls -----------------------------------------------------------------------------------------

    def call(self, method: str, params: Mapping[str, Any] | None = None) -> Any:
        """Call one method and return its ``result``."""
        return self.call_raw(method, params).get("result")

    def call_raw(self, method: str, params: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """Call one method and return the whole answer (``result``, ``total``, ``next``, ``time``)."""
        payload = dict(params or {})
        limit_hits = 0
        attempt = 0
        refreshed = False
        while True:
            self._check_blocked(method)
            token = self._tokens.access_token() if self._tokens else None
            body = {**payload, "auth": token} if token else payload
            self._throttle(1)
            with self._lock:
                self.requests += 1
            status: int | None = None
            data: dict[str, Any] | None = None
            try:
                response = self._http.post(self.endpoint + method, json=body, timeout=self._timeout)
            except httpx.TimeoutException:
                problem = f"Bitrix24 {method} timed out after {self._timeout:g} s"
            except httpx.TransportError as exc:
                problem = f"Bitrix24 {method}: connection failed ({type(exc).__name__})"
            else:
                status = response.status_code
                data = _json_or_none(response)
                if data is not None:
                    self._note_time(method, data.get("time"))
                if status == 200 and data is not None and "error" not in data:
                    return data
                code = str((data or {}).get("error") or "")
                description = str((data or {}).get("error_description") or "")
                if code == "QUERY_LIMIT_EXCEEDED":
                    limit_hits += 1
                    with self._lock:
                        self.limit_exceeded += 1
                    if limit_hits > self._retries + 2:
                        raise ExternalAPIError(
                            f"Bitrix24 {method}: QUERY_LIMIT_EXCEEDED persists; lower the rate_limit setting",
                            retriable=True,
                            retry_after=1.0,
                            status=status,
                        )
                    if self._on_limit_exceeded is not None:
                        self._on_limit_exceeded()
                    else:
                        self._sleep(self._backoff(limit_hits, None))
                    continue
                if code == "OPERATION_TIME_LIMIT" or status == 429:
                    wait = self._operation_wait(method, response)
                    with self._lock:
                        self._blocked_until[method] = self._clock() + wait
                    raise ExternalAPIError(
                        f"Bitrix24 blocked {method} for its operation time limit; retry in {wait:.0f} s",
                        retriable=True,
                        retry_after=wait,
                        status=status,
                    )
                if code == "expired_token" and self._tokens is not None and not refreshed:
                    refreshed = True
                    self._tokens.refresh(rejected=token)
                    continue
                if data is None or status >= 500:
                    problem = f"Bitrix24 {method} answered HTTP {status}" + (
                        " with a non-JSON page" if data is None else ""
                    )
                    if code:
                        problem += f" ({code})"
                else:
                    raise FatalDelivery(self._fatal_message(method, status, code, description), status=status)
            attempt += 1
            if attempt > self._retries:
                raise ExternalAPIError(f"{problem}; gave up after {attempt} attempts", retriable=True, status=status)
            log.debug("bitrix24 transient failure, retrying", extra={"method": method, "attempt": attempt})
            self._sleep(self._backoff(attempt, None))

    def _fatal_message(self, method: str, status: int, code: str, description: str) -> str:
        what = f"{code}: {description}" if code and description else code or description or f"HTTP {status}"
        if status == 401:
            hint = "check the webhook URL or reconnect the OAuth application"
        elif status == 404:
            hint = "the method does not exist or the webhook lacks its scope"
        else:
            hint = "the request was rejected as it is; fix the data or the mapping"
        return f"Bitrix24 {method} failed (HTTP {status}, {what}): {hint}"

    def _check_blocked(self, method: str) -> None:
        with self._lock:
            until = self._blocked_until.get(method, 0.0)
        remaining = until - self._clock()
        if remaining > 0:
            raise ExternalAPIError(
                f"Bitrix24 {method} is paused for its operation time limit; retry in {remaining:.0f} s",
                retriable=True,
                retry_after=remaining,
                status=429,
            )

    def _operation_wait(self, method: str, response: httpx.Response) -> float:
        header = response.headers.get("retry-after")
        if header and header.replace(".", "", 1).isdigit():
            return float(header)
        reset_at = self._reset_at.get(method)
        if reset_at is not None and reset_at > self._clock():
            return reset_at - self._clock()
        return self._operation_limit_wait

    def _note_time(self, method: str, block: Any) -> None:
        if isinstance(block, dict) and block.get("operating_reset_at"):
            with contextlib.suppress(TypeError, ValueError):
                self._reset_at[method] = float(block["operating_reset_at"])

    def paused_methods(self) -> dict[str, float]:
        """Methods paused for the operation time limit, with the seconds left."""
        now = self._clock()
        return {m: until - now for m, until in self._blocked_until.items() if until > now}

    # --- batch ------------------------------------------------------------------------------------------------

    @staticmethod
    def command(method: str, params: Mapping[str, Any] | None = None) -> str:
        """One ``batch`` command string: ``method?php-style-query``."""
        query = encode(params or {})
        return f"{method}?{query}" if query else method

    def batch_raw(self, commands: Mapping[str, tuple[str, Mapping[str, Any]]], *, halt: bool = False) -> BatchResult:
        """Run up to 50 commands in one request; ``$result[key][...]`` in a value refers to an earlier command."""
        if len(commands) > MAX_BATCH:
            raise ValueError(f"a batch holds at most {MAX_BATCH} commands, got {len(commands)}")
        cmd = {key: self.command(method, params) for key, (method, params) in commands.items()}
        answer = self.call("batch", {"halt": 1 if halt else 0, "cmd": cmd})
        answer = answer if isinstance(answer, dict) else {}
        errors = {
            key: Bitrix24Error(str(err.get("error", "")), str(err.get("error_description", "")))
            if isinstance(err, dict)
            else Bitrix24Error(str(err), "")
            for key, err in _as_map(answer.get("result_error")).items()
        }
        return BatchResult(
            results=_as_map(answer.get("result")),
            errors=errors,
            totals={k: int(v) for k, v in _as_map(answer.get("result_total")).items() if v is not None},
            nexts={k: int(v) for k, v in _as_map(answer.get("result_next")).items() if v is not None},
        )

    def batch(
        self, commands: Mapping[str, tuple[str, Mapping[str, Any]]], *, halt: bool = False
    ) -> tuple[dict[str, Any], dict[str, Bitrix24Error]]:
        """Run any number of commands, 50 to a request. Returns ``(results, errors)`` keyed like ``commands``.

        References (``$result[key]``) only work within one chunk of 50; with ``halt`` a failed command stops the
        rest of its chunk and all later chunks.
        """
        results: dict[str, Any] = {}
        errors: dict[str, Bitrix24Error] = {}
        items = list(commands.items())
        for start in range(0, len(items), MAX_BATCH):
            answer = self.batch_raw(dict(items[start : start + MAX_BATCH]), halt=halt)
            results.update(answer.results)
            errors.update(answer.errors)
            if halt and answer.errors:
                break
        return results, errors

    # --- lists ------------------------------------------------------------------------------------------------

    def list_all(
        self,
        method: str,
        params: Mapping[str, Any] | None = None,
        *,
        keyset: bool = True,
        id_field: str = "ID",
        pages_per_request: int = MAX_BATCH,
        on_total: Callable[[int], None] | None = None,
    ) -> Iterator[dict[str, Any]]:
        """Yield every row of a list method, up to 50 pages (2,500 rows) a request.

        With ``keyset`` (for methods that filter and sort by ``ID``: crm.*.list) rows come in ID order: each page
        asks for ``>ID`` the last ID of the page before it (a ``$result`` reference inside the batch) with
        ``start=-1``, so Bitrix24 never counts the table again; only the very first page counts, which tells when to
        stop. Otherwise pages are fetched by offset (``start=0, 50, ...``). ``on_total`` is told the ``total`` the
        first page gives (what a progress bar shows).
        """
        base = dict(params or {})
        pages = max(1, min(MAX_BATCH, pages_per_request))
        if keyset:
            yield from self._list_keyset(method, base, id_field, pages, on_total)
        else:
            yield from self._list_offset(method, base, pages, on_total)

    def _list_keyset(
        self, method: str, base: dict[str, Any], id_field: str, pages: int, on_total: Callable[[int], None] | None
    ) -> Iterator[dict[str, Any]]:
        filter_ = dict(base.pop("filter", None) or {})
        after = int(filter_.pop(f">{id_field}", 0) or 0)
        if base.get("select") and id_field not in base["select"] and "*" not in base["select"]:
            base["select"] = [*base["select"], id_field]
        base["order"] = {id_field: "ASC"}
        total: int | None = None
        seen = 0
        while True:
            commands: dict[str, tuple[str, Mapping[str, Any]]] = {}
            for i in range(pages):
                bound: Any = after if i == 0 else f"$result[p{i - 1}][{PAGE_SIZE - 1}][{id_field}]"
                start = 0 if (total is None and i == 0) else -1
                commands[f"p{i}"] = (method, {**base, "filter": {**filter_, f">{id_field}": bound}, "start": start})
            answer = self.batch_raw(commands)
            if total is None:
                total = answer.totals.get("p0")
                if total is not None and on_total is not None:
                    on_total(total)
            for i in range(pages):
                key = f"p{i}"
                if key in answer.errors:
                    raise self._page_error(method, answer.errors[key])
                rows = page_rows(answer.results.get(key))
                yield from rows
                seen += len(rows)
                if rows:
                    after = int(rows[-1][id_field])
                if len(rows) < PAGE_SIZE or (total is not None and seen >= total):
                    return

    def _list_offset(
        self, method: str, base: dict[str, Any], pages: int, on_total: Callable[[int], None] | None
    ) -> Iterator[dict[str, Any]]:
        offset = int(base.pop("start", 0) or 0)
        total: int | None = None
        while True:
            commands = {f"p{i}": (method, {**base, "start": offset + i * PAGE_SIZE}) for i in range(pages)}
            if total is not None:
                commands = {k: v for k, v in commands.items() if int(v[1]["start"]) < total}
            answer = self.batch_raw(commands)
            if total is None:
                total = answer.totals.get("p0")
                if total is not None and on_total is not None:
                    on_total(total)
            for i in range(len(commands)):
                key = f"p{i}"
                if key in answer.errors:
                    raise self._page_error(method, answer.errors[key])
                rows = page_rows(answer.results.get(key))
                yield from rows
                if len(rows) < PAGE_SIZE:
                    return
            offset += pages * PAGE_SIZE
            if total is not None and offset >= total:
                return

    def _page_error(self, method: str, error: Bitrix24Error) -> ExternalAPIError:
        if error.code in ("QUERY_LIMIT_EXCEEDED", "OPERATION_TIME_LIMIT", "INTERNAL_SERVER_ERROR"):
            return ExternalAPIError(f"Bitrix24 {method} page failed: {error.code}", retriable=True)
        return FatalDelivery(f"Bitrix24 {method} page failed: {error.code}: {error.description}")


def page_rows(result: Any) -> list[dict[str, Any]]:
    """A list page's rows; some list methods wrap them in a one-key object (``{"items": [...]}``)."""
    if isinstance(result, list):
        return result
    if isinstance(result, dict) and len(result) == 1:
        (inner,) = result.values()
        if isinstance(inner, list):
            return inner
    if isinstance(result, dict):
        return list(result.values())
    return []
