"""Settings of the Bitrix24 plugin (``HUB_BITRIX24__…``): how to reach the portal and how hard to push it."""

from __future__ import annotations

import re
from typing import Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

from hub.core.ratelimit import RateSpec

from .client import DEFAULT_OAUTH_URL

_WEBHOOK = re.compile(r"^https?://[^/\s]+/rest/\d+/[^/\s]+/?$")


class Bitrix24Settings(BaseModel):
    """Connect either with an incoming-webhook URL or with an OAuth application (client id and secret + portal).

    Secrets are ``SecretStr`` and validation errors never repeat the value given.
    """

    model_config = ConfigDict(extra="forbid", hide_input_in_errors=True, str_strip_whitespace=True)

    webhook_url: SecretStr | None = Field(
        default=None, description="Incoming webhook, https://<portal>/rest/<user_id>/<code>/ (the code is a secret)"
    )
    client_id: str | None = Field(default=None, description="OAuth application client id (local or market app)")
    client_secret: SecretStr | None = Field(default=None, description="OAuth application client secret")
    portal: str | None = Field(default=None, description="Portal domain for OAuth, e.g. acme.bitrix24.ru")
    application_token: SecretStr | None = Field(
        default=None, description="auth[application_token] that inbound events must carry to be trusted"
    )
    rate_limit: str = Field(default="2/s burst 50", description="Leaky bucket per portal (Enterprise: 5/s burst 250)")
    reconcile_interval: float = Field(
        default=300.0, gt=0, description="Seconds between polls for changes that events missed"
    )
    stage_map: dict[str, str] = Field(default_factory=dict, description="Hub deal stage → Bitrix24 STAGE_ID")
    oauth_url: str = Field(default=DEFAULT_OAUTH_URL, description="OAuth token endpoint (the sandbox serves its own)")
    responsible_id: int = Field(
        default=1, ge=1, description="Bitrix24 user that owns activities and calls the hub adds"
    )
    reconcile_overlap: float = Field(
        default=120.0, ge=0, description="Seconds re-read before each reconciliation cursor (clock skew, late writes)"
    )
    events: Literal["webhooks", "offline", "polling"] = Field(
        default="webhooks",
        description="How changes arrive: webhooks (POST /webhooks/bitrix24), offline (the hub fetches the portal's "
        "offline event queue, for a hub behind NAT) or polling (reconciliation only)",
    )
    offline_interval: float = Field(default=5.0, gt=0, description="Seconds between event.offline.get calls")

    @field_validator("webhook_url")
    @classmethod
    def _webhook_shape(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and not _WEBHOOK.match(value.get_secret_value().strip()):
            raise ValueError(
                "webhook_url must look like https://<portal>/rest/<user_id>/<code>/ (the value is not shown)"
            )
        return value

    @field_validator("rate_limit")
    @classmethod
    def _rate_spec(cls, value: str) -> str:
        try:
            RateSpec.parse(value)
        except Exception as exc:
            raise ValueError(str(exc)) from None
        return value

    @field_validator("portal")
    @classmethod
    def _portal_host(cls, value: str | None) -> str | None:
        if value is None:
            return None
        host = urlsplit(value if "://" in value else f"https://{value}").hostname
        if not host or "." not in host:
            raise ValueError("portal must be the portal's domain, e.g. acme.bitrix24.ru")
        return value

    @model_validator(mode="after")
    def _one_way_in(self) -> Bitrix24Settings:
        oauth = self.client_id or self.client_secret
        if self.webhook_url is None and not oauth:
            raise ValueError("set webhook_url, or client_id, client_secret and portal for an OAuth application")
        if oauth and not (self.client_id and self.client_secret and self.portal):
            raise ValueError("an OAuth application needs client_id, client_secret and portal together")
        return self

    @property
    def uses_oauth(self) -> bool:
        return self.webhook_url is None

    @property
    def account(self) -> str:
        """The ``account`` of every SourceRef from this portal: its domain (with the port, for a local sandbox)."""
        if self.webhook_url is not None:
            parts = urlsplit(self.webhook_url.get_secret_value())
        else:
            portal = self.portal or ""
            parts = urlsplit(portal if "://" in portal else f"https://{portal}")
        host = (parts.hostname or "").lower()
        return f"{host}:{parts.port}" if parts.port and parts.port not in (80, 443) else host

    @property
    def domain(self) -> str:
        """The portal's host name, the ``account`` of every SourceRef from this portal."""
        if self.webhook_url is not None:
            return urlsplit(self.webhook_url.get_secret_value()).hostname or ""
        portal = self.portal or ""
        return urlsplit(portal if "://" in portal else f"https://{portal}").hostname or ""


class Bitrix24Section(BaseModel):
    """The ``[bitrix24]`` section: one portal from ``HUB_BITRIX24__*`` and/or more in TOML ``[[bitrix24.portals]]``.

    The top-level fields are those of :class:`Bitrix24Settings`, optional here so that an installed but unconfigured
    plugin does not stop the hub; they form one portal as soon as ``webhook_url`` or ``client_id`` is set.
    """

    model_config = ConfigDict(extra="forbid", hide_input_in_errors=True, str_strip_whitespace=True)

    portals: list[Bitrix24Settings] = Field(default_factory=list)
    webhook_url: SecretStr | None = None
    client_id: str | None = None
    client_secret: SecretStr | None = None
    portal: str | None = None
    application_token: SecretStr | None = None
    rate_limit: str | None = None
    reconcile_interval: float | None = None
    stage_map: dict[str, str] | None = None
    oauth_url: str | None = None
    responsible_id: int | None = None
    reconcile_overlap: float | None = None
    events: Literal["webhooks", "offline", "polling"] | None = None
    offline_interval: float | None = None

    def configured(self) -> list[Bitrix24Settings]:
        """Every configured portal, the top-level one first; ValueError when two name the same portal."""
        top = {k: v for k, v in self.model_dump(exclude={"portals"}).items() if v is not None}
        found = [Bitrix24Settings.model_validate(top)] if top.get("webhook_url") or top.get("client_id") else []
        found += self.portals
        keys = [p.account for p in found]
        duplicates = sorted({k for k in keys if keys.count(k) > 1})
        if duplicates:
            raise ValueError(f"Bitrix24 portal {', '.join(duplicates)} is configured twice; connect each portal once")
        return found

    @model_validator(mode="after")
    def _valid_portals(self) -> Bitrix24Section:
        self.configured()
        return self
