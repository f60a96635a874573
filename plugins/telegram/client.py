"""A small Telegram Bot API client: the methods the plugin uses, errors mapped to the hub's.

https://core.telegram.org/bots/api#making-requests: ``POST {api_base}/bot{token}/{method}`` with a JSON body;
every answer is ``{"ok": true, "result": …}`` or ``{"ok": false, "error_code": N, "description": "…",
"parameters": {"retry_after": S}}``. The token is part of the URL, so no URL is ever logged or put in an error.
"""

from __future__ import annotations

import threading
from typing import Any

import httpx

from hub.core.errors import ExternalAPIError, FatalDelivery
from hub.core.ratelimit import RateLimiter

# getUpdates long polls: the read timeout must outlast the poll timeout
_TIMEOUT = httpx.Timeout(10.0, read=70.0)


class WebhookActive(ExternalAPIError):
    """``getUpdates`` refused with 409 because a webhook is set (or another poller runs)."""


class TokenRefused(ExternalAPIError):
    """401: the bot token is wrong or was revoked in @BotFather. Nothing helps but a new token."""


class BotAPI:
    def __init__(self, api_base: str, token: str, limiter: RateLimiter | None = None) -> None:
        self._base = f"{api_base.rstrip('/')}/bot{token}/"
        self._limiter = limiter
        self._http = httpx.Client(timeout=_TIMEOUT)
        self._lock = threading.Lock()

    def close(self) -> None:
        self._http.close()

    def call(self, method: str, stop: threading.Event | None = None, **params: Any) -> Any:
        """Call ``method`` with ``params`` (``None`` values left out); return its ``result``."""
        if self._limiter is not None:
            self._limiter.acquire(1, stop=stop)
        body = {k: v for k, v in params.items() if v is not None}
        try:
            response = self._http.post(self._base + method, json=body)
        except httpx.TimeoutException:
            raise ExternalAPIError(f"Telegram {method}: no answer in time", retriable=True) from None
        except httpx.HTTPError as exc:
            raise ExternalAPIError(f"Telegram {method}: {type(exc).__name__}", retriable=True) from None
        return self._result(method, response)

    @staticmethod
    def _result(method: str, response: httpx.Response) -> Any:
        try:
            data = response.json()
        except ValueError:
            data = None
        if isinstance(data, dict) and data.get("ok") is True:
            return data.get("result")
        status = response.status_code
        description = str(data.get("description", "")) if isinstance(data, dict) else ""
        description = description or f"HTTP {status}"
        parameters = data.get("parameters") if isinstance(data, dict) else None
        retry_after = parameters.get("retry_after") if isinstance(parameters, dict) else None
        message = f"Telegram {method}: {description}"
        if status == 401 or (status == 404 and not description.startswith("Bad Request")):
            raise TokenRefused(
                f"{message}: the bot token is wrong or revoked (HUB_TELEGRAM__BOT_TOKEN)",
                retriable=False,
                status=status,
            )
        if status == 409:
            raise WebhookActive(message, retriable=True, status=status)
        if status == 429:
            raise ExternalAPIError(message, retriable=True, retry_after=float(retry_after or 1), status=status)
        if status >= 500 or status == 0:
            raise ExternalAPIError(message, retriable=True, status=status)
        raise FatalDelivery(message, status=status)

    # --- the methods used ----------------------------------------------------------------------------------
    def get_me(self) -> dict[str, Any]:
        return dict(self.call("getMe"))

    def get_updates(self, offset: int | None, timeout: int, stop: threading.Event | None = None) -> list[Any]:
        result = self.call(
            "getUpdates",
            stop,
            offset=offset,
            timeout=timeout,
            limit=100,
            allowed_updates=["message", "edited_message"],
        )
        return list(result or [])

    def set_webhook(self, url: str, secret_token: str) -> bool:
        return bool(
            self.call("setWebhook", url=url, secret_token=secret_token, allowed_updates=["message", "edited_message"])
        )

    def delete_webhook(self) -> bool:
        return bool(self.call("deleteWebhook"))

    def webhook_info(self) -> dict[str, Any]:
        return dict(self.call("getWebhookInfo"))

    def send_message(self, chat_id: int, text: str, reply_to: int | None = None) -> dict[str, Any]:
        reply = {"message_id": reply_to, "allow_sending_without_reply": True} if reply_to else None
        return dict(self.call("sendMessage", chat_id=chat_id, text=text, reply_parameters=reply))

    def get_file(self, file_id: str) -> dict[str, Any]:
        return dict(self.call("getFile", file_id=file_id))
