"""One connected amoCRM account at run time: its API client paced by the hub's limiter, its OAuth tokens kept in
``hub.state`` (stored before use), its one-owner claim, and the status that ``hub_health`` reports."""

from __future__ import annotations

import threading
import time
from typing import Any

import httpx
import structlog

from hub.core.errors import ConfigError, ExternalAPIError
from plugins.amocrm.client import AccountBanned, AmoCRMClient, LongLivedToken, TokenProvider
from plugins.amocrm.mapping import Pipelines
from plugins.amocrm.oauth import OAuthSession, OAuthTokens, ReconnectRequired
from plugins.amocrm.settings import AmoCRMSection, AmoCRMSettings

log = structlog.get_logger("plugins.amocrm")

CLAIMS = "amocrm:accounts"  # state scope: amoCRM account id → the account key that owns it


class Account:
    """An amoCRM account as the hub uses it. ``key`` is the account string in every SourceRef."""

    def __init__(self, hub: Any, settings: AmoCRMSettings) -> None:
        self.hub = hub
        self.settings = settings
        self.key = settings.account
        self.scope = f"amocrm:{self.key}"
        self.limiter = hub.limiter(self.scope, settings.rate_limit)
        self._pipelines: Pipelines | None = None
        self._rate_limited_until = 0.0
        self._reconnect: str | None = None
        self._lock = threading.Lock()
        self.http = httpx.Client(timeout=30.0, event_hooks={"response": [self._on_response]})
        self.oauth: OAuthSession | None = None
        tokens: TokenProvider
        if settings.uses_oauth:
            assert settings.client_id and settings.client_secret and settings.redirect_uri
            self.oauth = OAuthSession(
                settings.base_url,
                client_id=settings.client_id,
                client_secret=settings.client_secret.get_secret_value(),
                redirect_uri=settings.redirect_uri,
                on_tokens=self._store_tokens,
                tokens=self._load_tokens(),
                load_tokens=self._load_tokens,
                http=self.http,
            )
            tokens = self.oauth
        else:
            assert settings.long_lived_token is not None
            tokens = LongLivedToken(settings.long_lived_token.get_secret_value())
        self.client = AmoCRMClient(
            settings.base_url, tokens, http=self.http, throttle=self._throttle, write_batch=settings.write_batch
        )

    def __repr__(self) -> str:
        return f"Account({self.key!r})"

    # --- pacing and tokens ------------------------------------------------------------------------------------
    def _throttle(self, n: int) -> object:
        return self.limiter.acquire(n, stop=self.hub.stop_event)

    def _on_response(self, response: httpx.Response) -> None:
        """A 429 pauses every request to the account (sink, inbox, poller alike) for as long as amoCRM asked."""
        if response.status_code == 429:
            try:
                wait = float(response.headers.get("retry-after") or 60)
            except ValueError:
                wait = 60.0
            self.limiter.pause(wait)
            self.limiter.fill()
            self._rate_limited_until = time.monotonic() + wait

    def _store_tokens(self, tokens: OAuthTokens) -> None:
        self.hub.state.put(self.scope, "oauth_tokens", tokens.to_dict())  # committed before the pair is used
        self._reconnect = None

    def _load_tokens(self) -> OAuthTokens | None:
        stored = self.hub.state.get(self.scope, "oauth_tokens")
        return OAuthTokens.from_dict(stored) if isinstance(stored, dict) else None

    # --- connecting -------------------------------------------------------------------------------------------
    def connect(self, code: str | None = None) -> dict[str, Any]:
        """Exchange an OAuth code (if given), check the token by reading the account, claim its id for this key."""
        if code is not None:
            if self.oauth is None:
                raise ConfigError(
                    f"amoCRM {self.key} uses a long-lived token; --code needs HUB_AMOCRM__CLIENT_ID, "
                    "HUB_AMOCRM__CLIENT_SECRET and HUB_AMOCRM__REDIRECT_URI"
                )
            self.oauth.exchange_code(code)
        info = self.call(self.client.account)
        account_id = str(info.get("id"))
        if not self.hub.state.claim(CLAIMS, account_id, self.key):
            owner = self.hub.state.get(CLAIMS, account_id)
            raise ConfigError(
                f"amoCRM account {account_id} is already connected to this hub as {owner!r}; an account is "
                "connected once (remove the other entry from the settings)"
            )
        self.hub.state.put(self.scope, "account", {"id": info.get("id"), "subdomain": info.get("subdomain")})
        log.info("amocrm.connected", account=self.key, account_id=account_id)
        return info

    # --- calls and status -------------------------------------------------------------------------------------
    def call(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        """Run one client operation, turning an expired OAuth grant into a visible status."""
        try:
            return fn(*args, **kwargs)
        except ReconnectRequired as exc:
            self._reconnect = str(exc)
            log.error("amocrm.reconnect_required", account=self.key, error=str(exc))
            raise

    def pipelines(self) -> Pipelines:
        if self._pipelines is None:
            self._pipelines = Pipelines.from_response(self.call(self.client.get, "/api/v4/leads/pipelines"))
        return self._pipelines

    def health(self) -> dict[str, Any]:
        report: dict[str, Any] = {
            "base_url": self.settings.base_url,
            "auth": "oauth" if self.settings.uses_oauth else "long_lived_token",
            "requests": self.client.requests_sent,
        }
        if self.client.banned:
            return {**report, "status": "down", "detail": "blocked by amoCRM (HTTP 403); all traffic stopped"}
        if self._reconnect is not None or (self.oauth is not None and self._load_tokens() is None):
            return {**report, "status": "down", "detail": "reconnect required: run `hub amocrm connect --code`"}
        if self._rate_limited_until > time.monotonic():
            return {**report, "status": "degraded", "detail": "rate limited (HTTP 429); waiting as amoCRM asked"}
        return {**report, "status": "ok"}

    def close(self) -> None:
        self.http.close()


class Accounts:
    """Every configured account of one hub, by key."""

    def __init__(self, hub: Any) -> None:
        section: AmoCRMSection = hub.plugin_settings("amocrm")
        self.by_key = {s.account: Account(hub, s) for s in section.configured()}

    def __iter__(self) -> Any:
        return iter(self.by_key.values())

    def get(self, key: str | None = None) -> Account:
        if not self.by_key:
            raise ConfigError("no amoCRM account is configured; set HUB_AMOCRM__BASE_URL and a token")
        if key is None:
            if len(self.by_key) > 1:
                raise ConfigError(f"several amoCRM accounts are configured; choose one of {sorted(self.by_key)}")
            return next(iter(self.by_key.values()))
        try:
            return self.by_key[key]
        except KeyError:
            raise ConfigError(f"no amoCRM account {key!r}; configured: {sorted(self.by_key)}") from None

    def close(self) -> None:
        for account in self:
            account.close()


def accounts(hub: Any) -> Accounts:
    """The accounts of ``hub``, created once per hub (the web route, sink, poller and CLI share them)."""
    found: Accounts = hub.runtime("amocrm", lambda: Accounts(hub))
    return found


def forget(hub: Any) -> None:
    hub.release_runtime("amocrm")


def is_fatal_for_account(exc: BaseException) -> bool:
    """Errors after which no further request to the account makes sense right now."""
    return isinstance(exc, AccountBanned | ReconnectRequired) or (
        isinstance(exc, ExternalAPIError) and exc.status == 401
    )
