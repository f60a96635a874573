"""``POST /webhooks/telegram``: updates pushed by Telegram, verified by the secret token, stored in the inbox.

Telegram does not sign updates; it sends back the ``secret_token`` given to ``setWebhook`` in the
``X-Telegram-Bot-Api-Secret-Token`` header. A request without the right value is refused with 401 and nothing
is stored. The route exists only in webhook mode with a secret configured. The update is stored in the durable
inbox (deduplicated on the bot and ``update_id``) before the 200, so Telegram's retries are harmless.
"""

from __future__ import annotations

import hmac
import json
from typing import Any

import structlog
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from hub.core.sources import SenderCheck, WebhookRoute

from .bot import UPDATE_KIND, Bot

log = structlog.get_logger("hub.telegram.webhook")
HEADER = "x-telegram-bot-api-secret-token"


def _error(status: int, code: str, detail: str) -> JSONResponse:
    return JSONResponse({"error": code, "detail": detail}, status_code=status)


def webhook_route(bot: Bot) -> WebhookRoute:
    secret = bot.settings.webhook_secret
    expected = secret.get_secret_value().encode() if secret is not None else None

    async def telegram_update(request: Request) -> Response:
        """An update from Telegram (https://core.telegram.org/bots/api#update)."""
        given = request.headers.get(HEADER, "").encode()
        if expected is None or not hmac.compare_digest(given, expected):
            log.warning("telegram webhook refused: wrong secret token", client=request.client and request.client.host)
            return _error(401, "unauthorized", f"missing or wrong {HEADER}")
        body = await request.body()
        if len(body) > bot.settings.max_body_bytes:
            return _error(413, "payload_too_large", "an update is never this large")
        try:
            update = json.loads(body)
        except (ValueError, RecursionError):
            return _error(400, "bad_json", "the body is not JSON")
        update_id = update.get("update_id") if isinstance(update, dict) else None
        if isinstance(update_id, bool) or not isinstance(update_id, int) or not 0 <= update_id < 2**53:
            return _error(400, "bad_update", "an update is an object with an integer update_id")
        stored = await run_in_threadpool(
            bot.hub.inbox.put, UPDATE_KIND, update, dedup_key=f"telegram:{bot.account}:{update_id}"
        )
        return JSONResponse({"ok": True, "stored": stored})

    sender = SenderCheck(
        what="the secret token Telegram sends in X-Telegram-Bot-Api-Secret-Token",
        configured=expected is not None,
        missing="set HUB_TELEGRAM__WEBHOOK_SECRET (16-256 characters of A-Z a-z 0-9 _ -)",
    )
    return WebhookRoute("/webhooks/telegram", telegram_update, ("POST",), "telegram_update", sender=sender)


def api_route(bot: Bot) -> WebhookRoute:
    async def send_message(request: Request) -> Response:
        """Send a Telegram message to a client who has written to the bot: ``{"client_id": 1, "text": "…"}``.

        The message is recorded on the client's timeline. 404 when the client has no chat with the bot.
        """
        try:
            data: Any = await request.json()
        except (ValueError, RecursionError):
            return _error(400, "bad_json", "the body must be a JSON object")
        if not isinstance(data, dict):
            return _error(422, "invalid", "the body must be a JSON object with client_id and text")
        client_id, text = data.get("client_id"), data.get("text")
        if isinstance(client_id, bool) or not isinstance(client_id, int) or not 0 < client_id < 2**63:
            return _error(422, "invalid", "client_id must be a positive integer")
        if not isinstance(text, str):
            return _error(422, "invalid", "text must be a string")
        result = await run_in_threadpool(bot.send, client_id, text, operator=data.get("operator"))
        return JSONResponse(result, status_code=201)

    return WebhookRoute("/api/messages", send_message, ("POST",), "telegram_send_message")
