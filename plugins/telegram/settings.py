"""The Telegram plugin's settings: ``HUB_TELEGRAM__*`` or the ``[telegram]`` table of the TOML file."""

from __future__ import annotations

import re
from typing import Literal

from pydantic import BaseModel, Field, SecretStr, field_validator

# https://core.telegram.org/bots/api#setwebhook: 1-256 characters, only A-Z, a-z, 0-9, _ and -
SECRET_TOKEN = re.compile(r"^[A-Za-z0-9_-]{16,256}$")
BOT_TOKEN = re.compile(r"^\d{1,20}:[A-Za-z0-9_-]{30,64}$")


class TelegramSettings(BaseModel):
    """How the hub reaches one bot.

    - ``bot_token``: from @BotFather (``123456789:AA…``). Nothing runs without it.
    - ``mode``: ``polling`` (``getUpdates`` long polling: works behind NAT, no public URL) or ``webhook``
      (Telegram POSTs each update to ``public_url`` + ``/webhooks/telegram``, verified by ``webhook_secret``).
    - ``webhook_secret``: sent by Telegram in ``X-Telegram-Bot-Api-Secret-Token``; 16 to 256 characters of
      ``A-Z a-z 0-9 _ -``. The webhook route exists only when it is set.
    - ``public_url``: the hub's HTTPS address as Telegram sees it, for ``hub telegram connect``.
    - ``api_base``: the Bot API server (a local Bot API server or the sandbox in tests).
    - ``create_clients``: a stranger who writes to the bot becomes a client (named from the profile).
    """

    bot_token: SecretStr | None = None
    mode: Literal["polling", "webhook"] = "polling"
    webhook_secret: SecretStr | None = None
    public_url: str | None = None
    api_base: str = "https://api.telegram.org"
    poll_timeout: int = Field(25, ge=0, le=50, description="seconds a getUpdates long poll may wait")
    create_clients: bool = True
    rate_limit: str = Field("25/s burst 25", description="all requests of the bot (Telegram allows about 30/s)")
    max_body_bytes: int = 1_000_000

    @field_validator("bot_token")
    @classmethod
    def _bot_token_shape(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and not BOT_TOKEN.match(value.get_secret_value()):
            raise ValueError("a bot token looks like 123456789:AA… (digits, a colon, then 30+ letters); see @BotFather")
        return value

    @field_validator("webhook_secret")
    @classmethod
    def _secret_shape(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and not SECRET_TOKEN.match(value.get_secret_value()):
            raise ValueError("webhook_secret must be 16 to 256 characters of A-Z, a-z, 0-9, _ and -")
        return value

    @property
    def configured(self) -> bool:
        return self.bot_token is not None
