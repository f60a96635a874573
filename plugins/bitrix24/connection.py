"""One connected Bitrix24 portal at run time: a core :class:`hub.core.accounts.Account` (rate budget shared by
every process, tokens in ``hub.state``, connect-once claim, health) with Bitrix24's REST client and OAuth on it."""

from __future__ import annotations

import hmac
import threading
from typing import Any

import httpx
import structlog

from hub.core.accounts import Account, Accounts
from hub.core.echo import EchoLedger
from hub.core.errors import ConfigError, ExternalAPIError, FatalDelivery
from hub.core.ratelimit import RateSpec

from .client import Bitrix24Client, OAuthSession, OAuthTokens, mask_webhook
from .settings import Bitrix24Section, Bitrix24Settings

log = structlog.get_logger("crm_hub_plugins.bitrix24")

LIMIT_SHOWN_FOR = 60.0  # seconds health stays "degraded" after Bitrix24 said QUERY_LIMIT_EXCEEDED


def with_headroom(spec: str) -> str:
    """The portal's bucket, one request smaller: Bitrix24 counts requests when they arrive, the hub when they
    leave, and a request that travels faster than the one before it would otherwise land on a full bucket."""
    parsed = RateSpec.parse(spec)
    return f"{parsed.rate:g}/s burst {max(1, parsed.burst - 1)}"


class StoredTokens:
    """The portal's OAuth tokens as a :class:`TokenProvider`: read from ``hub.state``, rotated pairs written back
    there (committed) before they are used. When another process rotated the pair first, the stored one is taken."""

    def __init__(self, portal: Portal) -> None:
        self.portal = portal
        self.settings = portal.settings
        self._session: OAuthSession | None = None
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"StoredTokens({self.portal.key!r})"

    @property
    def endpoint(self) -> str:
        portal = self.settings.portal or ""
        base = (portal if "://" in portal else f"https://{portal}").rstrip("/")
        return base + "/" if base.endswith("/rest") else base + "/rest/"

    def load(self) -> OAuthTokens | None:
        stored = self.portal.load_token("oauth_tokens")
        return OAuthTokens(**stored) if isinstance(stored, dict) else None

    def store(self, tokens: OAuthTokens) -> None:
        self.portal.store_token("oauth_tokens", dict(tokens.__dict__))
        self.portal.reconnect_required = None

    def start(self, tokens: OAuthTokens) -> OAuthSession:
        assert self.settings.client_id and self.settings.client_secret
        with self._lock:
            self._session = OAuthSession(
                client_id=self.settings.client_id,
                client_secret=self.settings.client_secret.get_secret_value(),
                tokens=tokens,
                on_tokens=self.store,
                portal=self.settings.portal,
                oauth_url=self.settings.oauth_url,
                http=self.portal.http,
            )
            return self._session

    def session(self) -> OAuthSession:
        if self._session is None:
            tokens = self.load()
            if tokens is None:
                self.portal.reconnect_required = "not connected"
                raise ExternalAPIError(
                    f"Bitrix24 portal {self.portal.key} is not connected yet: run `hub bitrix24 connect "
                    "--refresh-token …` with the token the portal gave the application",
                    retriable=True,
                    retry_after=300.0,
                    status=401,
                )
            return self.start(tokens)
        return self._session

    def access_token(self) -> str:
        session = self.session()
        try:
            return session.access_token()
        except FatalDelivery:
            return self._recover(session)

    def refresh(self, rejected: str | None = None) -> str:
        session = self.session()
        try:
            return session.refresh(rejected)
        except FatalDelivery:
            return self._recover(session)

    def _recover(self, failed: OAuthSession) -> str:
        """The refresh was refused: a newer pair stored by another process wins; otherwise reconnecting is needed."""
        stored = self.load()
        if stored is not None and stored.refresh_token != failed.tokens.refresh_token:
            return self.start(stored).access_token()
        self.portal.reconnect_required = "Bitrix24 refused the refresh token"
        log.error("bitrix24.reconnect_required", portal=self.portal.key)
        raise


class Portal(Account):
    """A Bitrix24 portal as the hub uses it. ``key`` is the ``account`` of every SourceRef from it."""

    system = "bitrix24"
    hub: Any  # the whole hub: inbound and sink code ingest and look clients up through it

    def __init__(self, hub: Any, settings: Bitrix24Settings) -> None:
        super().__init__(hub, settings.account, rate_limit=with_headroom(settings.rate_limit))
        self.settings = settings
        self.region = hub.settings.default_region
        self.reconnect_required: str | None = None
        self.auth_problem: str | None = None
        self._claimed: set[str] = set()
        self.echoes = EchoLedger(hub.state, self.system, self.key)  # what the sink wrote, for read-backs
        self.tokens: StoredTokens | None = None
        if settings.uses_oauth:
            self.tokens = StoredTokens(self)
            self.client = Bitrix24Client(
                self.tokens, http=self.http, throttle=self._throttle, on_limit_exceeded=self._on_limit
            )
        else:
            assert settings.webhook_url is not None
            self.client = Bitrix24Client(
                settings.webhook_url.get_secret_value(),
                http=self.http,
                throttle=self._throttle,
                on_limit_exceeded=self._on_limit,
            )

    def __repr__(self) -> str:
        return f"Portal({self.key!r})"

    @property
    def uses_oauth(self) -> bool:
        return self.tokens is not None

    # --- pacing and status ----------------------------------------------------------------------------------
    def _throttle(self, n: int) -> float:
        return self.throttle(n)

    def _on_limit(self) -> None:
        """Bitrix24 still said QUERY_LIMIT_EXCEEDED: its bucket is full, so every caller of this portal waits."""
        self.limiter.fill()
        self.mark_degraded("rate limited (QUERY_LIMIT_EXCEEDED); waiting", for_seconds=LIMIT_SHOWN_FOR)
        log.warning("bitrix24.query_limit_exceeded", portal=self.key)

    def _on_response(self, response: httpx.Response) -> None:
        super()._on_response(response)
        if response.status_code == 401:
            response.read()
            try:
                code = str(response.json().get("error") or "")
            except ValueError:
                code = ""
            if code != "expired_token":  # an expired access token is refreshed, anything else needs a person
                self.auth_problem = code or "HTTP 401"
        elif response.status_code == 200 and "/oauth/" not in response.request.url.path:
            self.auth_problem = None

    def accepts_token(self, token: str) -> bool:
        expected = self.settings.application_token
        return bool(
            expected is not None and token and hmac.compare_digest(token.encode(), expected.get_secret_value().encode())
        )

    def claim(self, member_id: str) -> bool:
        """Claim the portal's member_id for this key: a portal is connected once (False: another key owns it)."""
        if not member_id or member_id in self._claimed:
            return True
        if not super().claim(member_id):
            return False
        self._claimed.add(member_id)
        return True

    # --- connecting -----------------------------------------------------------------------------------------
    def connect(self, refresh_token: str | None = None) -> dict[str, Any]:
        """Check the credentials by reading the current user; with OAuth, start from ``refresh_token`` (stored
        once rotated). Claims the portal's member_id so that it cannot be connected twice."""
        if refresh_token is not None:
            if self.tokens is None:
                raise ConfigError(
                    f"Bitrix24 portal {self.key} uses an incoming webhook; --refresh-token needs "
                    "HUB_BITRIX24__CLIENT_ID, HUB_BITRIX24__CLIENT_SECRET and HUB_BITRIX24__PORTAL"
                )
            self.tokens.start(OAuthTokens(access_token="", refresh_token=refresh_token, expires_at=0.0))
        profile = self.client.call("profile")
        member_id = ""
        if self.tokens is not None:
            stored = self.tokens.load()
            member_id = stored.member_id if stored else ""
        if member_id and not self.claim(member_id):
            raise ConfigError(
                f"Bitrix24 portal {self.key} (member {member_id}) is already connected to this hub as "
                f"{self.owner_of(member_id)!r}; a portal is connected once (remove the other entry)"
            )
        info = {"portal": self.key, "member_id": member_id, "user_id": (profile or {}).get("ID")}
        self.hub.state.put(self.scope, "portal", info)
        log.info("bitrix24.connected", portal=self.key, member_id=member_id or None)
        return info

    def health(self) -> dict[str, Any]:
        report: dict[str, Any] = {
            "portal": self.key,
            "auth": "oauth" if self.uses_oauth else "webhook",
            "requests": self.client.requests,
            "query_limit_exceeded": self.client.limit_exceeded,
        }
        if self.tokens is not None and (self.reconnect_required or self.tokens.load() is None):
            return {**report, "status": "down", "detail": "reconnect required: run `hub bitrix24 connect`"}
        if self.auth_problem is not None:
            return {**report, "status": "down", "detail": f"authentication refused ({self.auth_problem})"}
        paused = self.client.paused_methods()
        if paused:
            methods = ", ".join(sorted(paused))
            return {**report, "status": "degraded", "detail": f"operation time limit: {methods} paused"}
        return {**report, **super().health()}

    def describe(self) -> str:
        """Where the portal is, safe to show (the webhook code masked)."""
        if self.settings.webhook_url is not None:
            return mask_webhook(self.settings.webhook_url.get_secret_value())
        return self.tokens.endpoint if self.tokens else self.key


class Portals(Accounts[Portal]):
    """Every configured portal of one hub, by key."""

    def for_token(self, token: str) -> Portal | None:
        """The portal whose application token an inbound event carries."""
        found = None
        for portal in self:
            if portal.accepts_token(token):
                found = portal
        return found


def portals(hub: Any) -> Portals:
    """The portals of ``hub``, created once per hub (the web route, sink, poller and CLI share them)."""

    def create() -> Portals:
        section: Bitrix24Section = hub.plugin_settings("bitrix24")
        found = [Portal(hub, s) for s in section.configured()]
        return Portals("Bitrix24", found, setting_hint="HUB_BITRIX24__WEBHOOK_URL (or an OAuth app)")

    found: Portals = hub.runtime("bitrix24", create)
    return found


def forget(hub: Any) -> None:
    hub.release_runtime("bitrix24")
