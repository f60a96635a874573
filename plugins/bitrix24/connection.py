"""One connected Bitrix24 portal at run time: its REST client paced by the hub's limiter, its OAuth tokens kept
in ``hub.state`` (stored before use, reloaded after a restart), its one-owner claim, and what ``hub_health`` shows."""

from __future__ import annotations

import hmac
import threading
import time
from typing import Any

import httpx
import structlog

from hub.core.errors import ConfigError, ExternalAPIError, FatalDelivery
from hub.core.ratelimit import RateSpec
from plugins.bitrix24.client import Bitrix24Client, OAuthSession, OAuthTokens, mask_webhook
from plugins.bitrix24.settings import Bitrix24Section, Bitrix24Settings

log = structlog.get_logger("plugins.bitrix24")

CLAIMS = "bitrix24:portals"  # state scope: "member:<member_id>" → the portal key that owns it
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
        stored = self.portal.hub.state.get(self.portal.scope, "oauth_tokens")
        return OAuthTokens(**stored) if isinstance(stored, dict) else None

    def store(self, tokens: OAuthTokens) -> None:
        self.portal.hub.state.put(self.portal.scope, "oauth_tokens", dict(tokens.__dict__))
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


class Portal:
    """A Bitrix24 portal as the hub uses it. ``key`` is the ``account`` of every SourceRef from it."""

    def __init__(self, hub: Any, settings: Bitrix24Settings) -> None:
        self.hub = hub
        self.settings = settings
        self.key = settings.account
        self.scope = f"bitrix24:{self.key}"
        self.region = hub.settings.default_region
        self.limiter = hub.limiter(f"bitrix24:{self.key}", with_headroom(settings.rate_limit))
        self.reconnect_required: str | None = None
        self.auth_problem: str | None = None
        self._limited_at = 0.0
        self._claimed: set[str] = set()
        self.http = httpx.Client(timeout=30.0, event_hooks={"response": [self._on_response]})
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
        return self.limiter.acquire(n, stop=self.hub.stop_event)

    def _on_limit(self) -> None:
        """Bitrix24 still said QUERY_LIMIT_EXCEEDED: its bucket is full, so every caller of this portal waits."""
        self.limiter.fill()
        self._limited_at = time.monotonic()
        log.warning("bitrix24.query_limit_exceeded", portal=self.key)

    def _on_response(self, response: httpx.Response) -> None:
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
        if not self.hub.state.claim(CLAIMS, f"member:{member_id}", self.key):
            return False
        self._claimed.add(member_id)
        return True

    def owner_of(self, member_id: str) -> Any:
        return self.hub.state.get(CLAIMS, f"member:{member_id}")

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
        if self._limited_at and time.monotonic() - self._limited_at < LIMIT_SHOWN_FOR:
            return {**report, "status": "degraded", "detail": "rate limited (QUERY_LIMIT_EXCEEDED); waiting"}
        return {**report, "status": "ok"}

    def describe(self) -> str:
        """Where the portal is, safe to show (the webhook code masked)."""
        if self.settings.webhook_url is not None:
            return mask_webhook(self.settings.webhook_url.get_secret_value())
        return self.tokens.endpoint if self.tokens else self.key

    def close(self) -> None:
        self.http.close()


class Portals:
    """Every configured portal of one hub, by key."""

    def __init__(self, hub: Any) -> None:
        section: Bitrix24Section = hub.plugin_settings("bitrix24")
        self.by_key = {s.account: Portal(hub, s) for s in section.configured()}

    def __iter__(self) -> Any:
        return iter(self.by_key.values())

    def __bool__(self) -> bool:
        return bool(self.by_key)

    def get(self, key: str | None = None) -> Portal:
        if not self.by_key:
            raise ConfigError("no Bitrix24 portal is configured; set HUB_BITRIX24__WEBHOOK_URL (or an OAuth app)")
        if key is None:
            if len(self.by_key) > 1:
                raise ConfigError(f"several Bitrix24 portals are configured; choose one of {sorted(self.by_key)}")
            return next(iter(self.by_key.values()))
        try:
            return self.by_key[key]
        except KeyError:
            raise ConfigError(f"no Bitrix24 portal {key!r}; configured: {sorted(self.by_key)}") from None

    def for_token(self, token: str) -> Portal | None:
        """The portal whose application token an inbound event carries."""
        found = None
        for portal in self:
            if portal.accepts_token(token):
                found = portal
        return found

    def close(self) -> None:
        for portal in self:
            portal.close()


def portals(hub: Any) -> Portals:
    """The portals of ``hub``, created once per hub (the web route, sink, poller and CLI share them)."""
    found: Portals = hub.runtime("bitrix24", lambda: Portals(hub))
    return found


def forget(hub: Any) -> None:
    hub.release_runtime("bitrix24")
