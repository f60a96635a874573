"""Settings of one amoCRM account (``HUB_AMOCRM__*``); secrets stay SecretStr and never appear in messages."""

from __future__ import annotations

import re
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

from hub.core.errors import ConfigError
from hub.core.ratelimit import RateSpec

MAX_BATCH = 250
_ACCOUNT_HOST = re.compile(r"^(?P<sub>[a-z0-9][a-z0-9-]*)\.(?:amocrm\.ru|amocrm\.com|kommo\.com)$")
_LOOPBACK = {"127.0.0.1", "localhost", "::1"}


class AmoCRMSettings(BaseModel):
    """How the hub reaches one amoCRM (or Kommo) account.

    Authenticate with ``long_lived_token``, or with an OAuth integration (``client_id``, ``client_secret``,
    ``redirect_uri``) connected once by ``hub amocrm connect``.
    """

    # Pydantic puts the offending input into error messages by default; a token must never end up there.
    model_config = ConfigDict(extra="forbid", hide_input_in_errors=True, str_strip_whitespace=True)

    base_url: str = Field(description="https://<subdomain>.amocrm.ru or https://<subdomain>.kommo.com")
    long_lived_token: SecretStr | None = None
    client_id: str | None = None
    client_secret: SecretStr | None = None
    redirect_uri: str | None = None
    webhook_secret: SecretStr | None = Field(
        default=None, description="The secret path part: webhooks are accepted at /webhooks/amocrm/<secret>"
    )
    rate_limit: str = "7/s window"
    write_batch: int = Field(default=50, ge=1, le=MAX_BATCH)
    reconcile_interval: float = Field(default=300.0, gt=0, description="Seconds between /api/v4/events polls")
    pipeline_map: dict[str, int] = Field(default_factory=dict, description="Hub pipeline name → amoCRM pipeline id")
    status_map: dict[str, int] = Field(default_factory=dict, description="Hub stage name → amoCRM status id")

    @field_validator("base_url")
    @classmethod
    def _account_url(cls, value: str) -> str:
        parts = urlsplit(value.rstrip("/"))
        host = (parts.hostname or "").lower()
        if parts.scheme == "http" and host in _LOOPBACK:
            return f"http://{parts.netloc}"  # a local sandbox
        if parts.scheme != "https" or not _ACCOUNT_HOST.match(host) or parts.path not in ("", "/"):
            raise ValueError(
                "base_url must be the account address, https://<subdomain>.amocrm.ru or https://<subdomain>.kommo.com"
            )
        return f"https://{host}"

    @field_validator("rate_limit")
    @classmethod
    def _rate(cls, value: str) -> str:
        try:
            RateSpec.parse(value)
        except ConfigError as exc:
            raise ValueError(str(exc)) from exc
        return value

    @field_validator("webhook_secret")
    @classmethod
    def _secret_strength(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None:
            text = value.get_secret_value()
            if len(text) < 16 or not re.fullmatch(r"[A-Za-z0-9_-]+", text):
                raise ValueError("webhook_secret must be at least 16 URL-safe characters (letters, digits, - or _)")
        return value

    @model_validator(mode="after")
    def _one_way_to_authenticate(self) -> AmoCRMSettings:
        oauth = [self.client_id, self.client_secret, self.redirect_uri]
        if any(v is not None for v in oauth) and not all(v is not None for v in oauth):
            raise ValueError("OAuth needs all of client_id, client_secret and redirect_uri")
        if self.long_lived_token is None and self.client_id is None:
            raise ValueError(
                "set long_lived_token (HUB_AMOCRM__LONG_LIVED_TOKEN) or an OAuth integration "
                "(HUB_AMOCRM__CLIENT_ID, HUB_AMOCRM__CLIENT_SECRET, HUB_AMOCRM__REDIRECT_URI)"
            )
        return self

    @property
    def account(self) -> str:
        """The account key used in SourceRefs: the subdomain (the host for a local sandbox)."""
        host = urlsplit(self.base_url).hostname or ""
        match = _ACCOUNT_HOST.match(host)
        return match["sub"] if match else urlsplit(self.base_url).netloc

    @property
    def uses_oauth(self) -> bool:
        return self.long_lived_token is None


class AmoCRMSection(BaseModel):
    """The ``[amocrm]`` section: one account from ``HUB_AMOCRM__*`` and/or more in TOML ``[[amocrm.accounts]]``.

    The top-level fields are those of :class:`AmoCRMSettings`, optional here so that an installed but unconfigured
    plugin does not stop the hub; they are validated as one account as soon as ``base_url`` is set.
    """

    model_config = ConfigDict(extra="forbid", hide_input_in_errors=True, str_strip_whitespace=True)

    accounts: list[AmoCRMSettings] = Field(default_factory=list)
    base_url: str | None = None
    long_lived_token: SecretStr | None = None
    client_id: str | None = None
    client_secret: SecretStr | None = None
    redirect_uri: str | None = None
    webhook_secret: SecretStr | None = None
    rate_limit: str | None = None
    write_batch: int | None = None
    reconcile_interval: float | None = None
    pipeline_map: dict[str, int] | None = None
    status_map: dict[str, int] | None = None

    def configured(self) -> list[AmoCRMSettings]:
        """Every configured account, the top-level one first; ValueError when two name the same account."""
        top = {k: v for k, v in self.model_dump(exclude={"accounts"}).items() if v is not None}
        found = [AmoCRMSettings.model_validate(top)] if top.get("base_url") else []
        found += self.accounts
        keys = [a.account for a in found]
        duplicates = sorted({k for k in keys if keys.count(k) > 1})
        if duplicates:
            raise ValueError(f"amoCRM account {', '.join(duplicates)} is configured twice; connect each account once")
        return found

    @model_validator(mode="after")
    def _valid_accounts(self) -> AmoCRMSection:
        self.configured()
        return self
