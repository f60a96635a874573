"""amoCRM OAuth 2.0: exchange an authorization code, refresh with rotating single-use refresh tokens.

A refresh token works once: the answer carries the next pair, and the old refresh token is dead from then on.
So the new pair goes to ``on_tokens`` (which must store it durably) before it is used or returned; when storing
fails the pair stays in memory and is offered to ``on_tokens`` again before any later use, and the dead refresh
token is never sent again.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

import httpx

from hub.core.errors import ExternalAPIError, FatalDelivery

ACCESS_TOKEN_PATH = "/oauth2/access_token"
RECONNECT_HINT = "reconnect the account with `hub amocrm connect`"
ACCESS_TOKEN_LIFETIME = 86_400.0


class ReconnectRequired(FatalDelivery):
    """The account's OAuth grant is gone (refresh token revoked or used twice): a person must connect again."""

    def __init__(self, message: str) -> None:
        super().__init__(message, status=401)


@dataclass(frozen=True)
class OAuthTokens:
    """An access/refresh pair and when the access token expires (epoch seconds)."""

    access_token: str
    refresh_token: str
    expires_at: float

    def __repr__(self) -> str:
        return f"OAuthTokens(access_token=***, refresh_token=***, expires_at={self.expires_at:.0f})"

    def to_dict(self) -> dict[str, Any]:
        return {"access_token": self.access_token, "refresh_token": self.refresh_token, "expires_at": self.expires_at}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> OAuthTokens:
        return cls(str(data["access_token"]), str(data["refresh_token"]), float(data["expires_at"]))


def authorization_url(client_id: str, state: str, *, kommo: bool = False) -> str:
    """Where a person grants the integration access to an account (the code comes back to ``redirect_uri``)."""
    host = "https://www.kommo.com/oauth" if kommo else "https://www.amocrm.ru/oauth"
    return f"{host}?{urlencode({'client_id': client_id, 'state': state, 'mode': 'post_message'})}"


class OAuthSession:
    """Tokens of one account: ``access_token()`` refreshes ``refresh_margin`` seconds before expiry, ``renew()``
    refreshes after a 401. Thread-safe: one refresh at a time, so a refresh token is never sent twice."""

    def __init__(
        self,
        base_url: str,
        *,
        client_id: str,
        client_secret: str,
        redirect_uri: str,
        on_tokens: Callable[[OAuthTokens], None],
        tokens: OAuthTokens | None = None,
        http: httpx.Client | None = None,
        clock: Callable[[], float] = time.time,
        refresh_margin: float = 600.0,
        load_tokens: Callable[[], OAuthTokens | None] | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.client_id = client_id
        self._client_secret = client_secret
        self.redirect_uri = redirect_uri
        self.on_tokens = on_tokens
        self._tokens = tokens
        self._unsaved: OAuthTokens | None = None
        self._own_http = http is None
        self.http = http or httpx.Client(timeout=30.0)
        self.clock = clock
        self.refresh_margin = refresh_margin
        self.load_tokens = load_tokens
        self.refreshes = 0
        self._lock = threading.RLock()

    def __repr__(self) -> str:
        return f"OAuthSession({self.base_url!r}, client_id={self.client_id!r}, tokens={self._tokens!r})"

    @property
    def tokens(self) -> OAuthTokens | None:
        return self._tokens

    def exchange_code(self, code: str) -> OAuthTokens:
        """Trade the authorization code from ``hub amocrm connect`` for the first pair (stored via on_tokens)."""
        with self._lock:
            body = self._post({"grant_type": "authorization_code", "code": code}, "exchange the authorization code")
            return self._adopt(body)

    def refresh(self) -> OAuthTokens:
        """Spend the refresh token for a new pair; ``on_tokens`` has stored it when this returns."""
        with self._lock:
            self._store_unsaved()
            if self._tokens is None:
                raise ReconnectRequired(f"amoCRM {self.base_url} has no OAuth tokens yet; {RECONNECT_HINT}")
            if self._reload_newer():
                return self._tokens
            spent = self._tokens.refresh_token
            body = self._post({"grant_type": "refresh_token", "refresh_token": spent}, "refresh the access token")
            self.refreshes += 1
            return self._adopt(body)

    def access_token(self) -> str:
        with self._lock:
            self._store_unsaved()
            if self._tokens is None:
                raise ReconnectRequired(f"amoCRM {self.base_url} has no OAuth tokens yet; {RECONNECT_HINT}")
            if self._tokens.expires_at - self.refresh_margin <= self.clock():
                self.refresh()
            assert self._tokens is not None
            return self._tokens.access_token

    def renew(self, rejected: str | None = None) -> bool:
        """After a 401: refresh once, unless another thread already did since ``rejected`` was sent."""
        with self._lock:
            if rejected is not None and self._tokens is not None and self._tokens.access_token != rejected:
                return True
            self.refresh()
            return True

    def close(self) -> None:
        if self._own_http:
            self.http.close()

    # --- internals ----------------------------------------------------------------------------------------
    def _reload_newer(self) -> bool:
        """Another process (web and worker roles share an account) may have rotated the pair already: take
        the stored one instead of spending a refresh token that is dead."""
        if self.load_tokens is None or self._tokens is None:
            return False
        stored = self.load_tokens()
        if stored is None or stored.refresh_token == self._tokens.refresh_token:
            return False
        self._tokens = stored
        return stored.expires_at - self.refresh_margin > self.clock()

    def _adopt(self, body: dict[str, Any]) -> OAuthTokens:
        try:
            lifetime = float(body.get("expires_in") or ACCESS_TOKEN_LIFETIME)
            fresh = OAuthTokens(str(body["access_token"]), str(body["refresh_token"]), self.clock() + lifetime)
        except (KeyError, TypeError, ValueError) as exc:
            raise ExternalAPIError(
                f"amoCRM {self.base_url}{ACCESS_TOKEN_PATH} answered without access_token/refresh_token; will retry"
            ) from exc
        # The old refresh token is dead now: the new pair is the only valid one and must be stored first.
        self._tokens = None
        self._unsaved = fresh
        self._store_unsaved()
        return fresh

    def _store_unsaved(self) -> None:
        if self._unsaved is None:
            return
        try:
            self.on_tokens(self._unsaved)
        except Exception as exc:
            raise ExternalAPIError(
                f"the new amoCRM OAuth tokens for {self.base_url} could not be stored ({type(exc).__name__}); they "
                "are kept in memory and stored before any further use; fix the storage"
            ) from exc
        self._tokens, self._unsaved = self._unsaved, None

    def _post(self, grant: dict[str, str], what: str) -> dict[str, Any]:
        payload = {
            "client_id": self.client_id,
            "client_secret": self._client_secret,
            "redirect_uri": self.redirect_uri,
            **grant,
        }
        url = f"{self.base_url}{ACCESS_TOKEN_PATH}"
        try:
            response = self.http.post(url, json=payload, headers={"Accept": "application/json"})
        except httpx.TransportError as exc:
            raise ExternalAPIError(f"could not {what} at {url} ({type(exc).__name__}); will retry") from exc
        try:
            body = response.json()
        except ValueError:
            body = None
        if response.status_code == 200 and isinstance(body, dict):
            return body
        detail = ""
        if isinstance(body, dict):
            detail = " ".join(str(body[k]) for k in ("hint", "title", "detail") if body.get(k))
        if response.status_code in (400, 401, 403):
            raise ReconnectRequired(
                f"amoCRM refused to {what} ({response.status_code}: {detail or 'no detail'}); the OAuth grant is "
                f"no longer valid (a refresh token works once and expires after 3 months unused): {RECONNECT_HINT}"
            )
        raise ExternalAPIError(
            f"could not {what} at {url} ({response.status_code}: {detail or response.text[:80]!r}); will retry",
            status=response.status_code,
        )
