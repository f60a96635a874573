"""One connected amoCRM account at run time: the core :class:`hub.core.accounts.Account` (shared rate budget,
capped Retry-After, tokens in ``hub.state``, connect-once claim, health) with amoCRM's client and OAuth on it."""

from __future__ import annotations

from typing import Any

import structlog

from hub.core.accounts import Account as CoreAccount
from hub.core.accounts import Accounts as CoreAccounts
from hub.core.echo import EchoLedger
from hub.core.errors import ConfigError, ExternalAPIError

from .client import AccountBanned, AmoCRMClient, LongLivedToken, TokenProvider
from .mapping import Pipelines
from .oauth import OAuthSession, OAuthTokens, ReconnectRequired
from .settings import AmoCRMSection, AmoCRMSettings

log = structlog.get_logger("crm_hub_plugins.amocrm")


class Account(CoreAccount):
    """An amoCRM account as the hub uses it. ``key`` is the account string in every SourceRef."""

    system = "amocrm"
    hub: Any  # the whole hub: inbound and sink code ingest and look clients up through it

    def __init__(self, hub: Any, settings: AmoCRMSettings) -> None:
        secrets = [v.get_secret_value() for v in (settings.long_lived_token, settings.client_secret) if v is not None]
        super().__init__(hub, settings.account, rate_limit=settings.rate_limit, secrets=secrets)
        self.settings = settings
        self.echoes = EchoLedger(hub.state, self.system, self.key)
        self._pipelines: Pipelines | None = None
        self._reconnect: str | None = None
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
        return self.throttle(n)

    def _store_tokens(self, tokens: OAuthTokens) -> None:
        self.store_token("oauth_tokens", tokens.to_dict())  # committed before the pair is used
        self._reconnect = None

    def _load_tokens(self) -> OAuthTokens | None:
        stored = self.load_token("oauth_tokens")
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
        self.require_claim(account_id)
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
        return {**report, **super().health()}


Accounts = CoreAccounts[Account]


def accounts(hub: Any) -> Accounts:
    """The accounts of ``hub``, created once per hub (the web route, sink, poller and CLI share them)."""

    def create() -> Accounts:
        section: AmoCRMSection = hub.plugin_settings("amocrm")
        found = [Account(hub, s) for s in section.configured()]
        return Accounts("amoCRM", found, setting_hint="HUB_AMOCRM__BASE_URL and a token")

    return Accounts.of(hub, "amocrm", create)


def forget(hub: Any) -> None:
    hub.release_runtime("amocrm")


def is_fatal_for_account(exc: BaseException) -> bool:
    """Errors after which no further request to the account makes sense right now."""
    return isinstance(exc, AccountBanned | ReconnectRequired) or (
        isinstance(exc, ExternalAPIError) and exc.status == 401
    )
