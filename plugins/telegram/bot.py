"""One connected bot: receiving updates (long polling or the webhook's inbox), and sending replies.

Polling stores the offset in ``hub.state`` only after the batch it confirms is ingested, and Telegram forgets
an update only when a later ``getUpdates`` carries that offset: a crash re-reads the batch, and the source refs
make the repeat change nothing. Nothing is lost and nothing is doubled.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import structlog

from hub.core.errors import BadInput, ConfigError, ExternalAPIError, NotFound

from .client import BotAPI, TokenRefused, WebhookActive
from .mapping import SYSTEM, NotForTheHub, bot_account, message_observations, sent_observation
from .settings import TelegramSettings

log = structlog.get_logger("hub.telegram")

STATE_SCOPE = "telegram"
UPDATE_KIND = "telegram.update"


class Bot:
    def __init__(self, hub: Any, settings: TelegramSettings) -> None:
        if settings.bot_token is None:
            raise ConfigError("HUB_TELEGRAM__BOT_TOKEN is not set: create a bot with @BotFather and set its token")
        self.hub = hub
        self.settings = settings
        token = settings.bot_token.get_secret_value()
        self.account = bot_account(token)
        self.api = BotAPI(settings.api_base, token, hub.limiter(f"telegram:{self.account}", settings.rate_limit))
        self.status: dict[str, Any] = {"status": "ok", "mode": settings.mode, "bot": self.account}
        self.received = 0

    def close(self) -> None:
        self.api.close()

    # --- receiving ---------------------------------------------------------------------------------------
    @property
    def _offset_key(self) -> str:
        return f"offset:{self.account}"

    def offset(self) -> int | None:
        value = self.hub.state.get(STATE_SCOPE, self._offset_key)
        return int(value) if value is not None else None

    def apply(self, updates: list[Any]) -> int:
        """Ingest what the updates hold; return how many messages were recorded. Malformed updates are logged
        and skipped (Telegram would send them again and again otherwise)."""
        observations: list[Any] = []
        for update in updates:
            if not isinstance(update, dict):
                continue
            try:
                observations.extend(message_observations(update, self.account))
            except NotForTheHub:
                continue
            except (ValueError, TypeError) as exc:
                log.warning("telegram update skipped", update_id=update.get("update_id"), problem=str(exc))
        if not observations:
            return 0
        recorded = 0
        for result in self.hub.ingest_many(observations):
            if isinstance(result, BadInput):
                log.warning("telegram message refused", problem=str(result))
            elif getattr(result, "item_id", None) is not None:
                recorded += 1
        self.received += recorded
        return recorded

    def poll_once(self, stop: threading.Event | None = None, timeout: int | None = None) -> int:
        """One ``getUpdates`` round: fetch, ingest, then store the next offset. Returns updates fetched."""
        offset = self.offset()
        updates = self.api.get_updates(offset, self.settings.poll_timeout if timeout is None else timeout, stop)
        if not updates:
            return 0
        self.apply(updates)
        ids = [u["update_id"] for u in updates if isinstance(u, dict) and isinstance(u.get("update_id"), int)]
        if ids:
            self.hub.state.put(STATE_SCOPE, self._offset_key, max(ids) + 1)
        return len(updates)

    def run_polling(self, stop: threading.Event) -> None:
        """The listener: long-poll until ``stop``. A webhook that is set makes polling impossible: say so."""
        backoff = 1.0
        while not stop.is_set():
            try:
                self.poll_once(stop)
                self.status = {"status": "ok", "mode": "polling", "bot": self.account, "received": self.received}
                backoff = 1.0
            except WebhookActive as exc:
                self._down(f"{exc}; run 'hub telegram connect' to switch this bot to polling")
                stop.wait(30.0)
            except TokenRefused as exc:
                self._down(str(exc))
                stop.wait(60.0)
            except ExternalAPIError as exc:
                wait = exc.retry_after or backoff
                self.status = {"status": "degraded", "mode": "polling", "bot": self.account, "error": str(exc)}
                log.warning("telegram polling failed; retrying", error=str(exc), retry_in=wait)
                stop.wait(wait)
                backoff = min(backoff * 2, 60.0)

    def _down(self, reason: str) -> None:
        if self.status.get("error") != reason:
            log.error("telegram bot is down", bot=self.account, error=reason)
        self.status = {"status": "down", "mode": self.settings.mode, "bot": self.account, "error": reason}

    def handle_update(self, payload: dict[str, Any]) -> None:
        """The inbox handler for updates that arrived by webhook."""
        self.apply([payload])

    # --- sending -----------------------------------------------------------------------------------------
    def chat_of(self, client_id: int) -> int:
        """The private chat with a client: Telegram's private chat id is the user's id."""
        client = self.hub.get_client(client_id)
        for ref in client.refs:
            if ref.system == SYSTEM and ref.account == self.account and ref.entity == "user":
                return int(ref.id)
        raise NotFound(f"client {client_id} has never written to the bot, so it cannot be messaged first")

    def send(self, client_id: int, text: str, *, operator: str | None = None) -> dict[str, Any]:
        """Send ``text`` to the client's private chat and record it on the timeline; return what was recorded."""
        text = text.strip()
        if not text:
            raise BadInput("text is empty")
        if len(text) > 4096:
            raise BadInput("text is longer than Telegram's 4,096 characters")
        chat_id = self.chat_of(client_id)
        started = time.monotonic()
        sent = self.api.send_message(chat_id, text)
        result = self.hub.ingest(sent_observation(self.account, client_id, sent, operator=operator))
        log.info("telegram message sent", client_id=client_id, ms=round(1000 * (time.monotonic() - started)))
        return {"client_id": client_id, "item_id": result.item_id, "message_id": sent.get("message_id")}

    def health(self) -> dict[str, Any]:
        return dict(self.status)
