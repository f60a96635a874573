"""``POST /api/emails``: send an email through the mailbox's SMTP server and record it on the timeline."""

from __future__ import annotations

import json
from typing import Any

import structlog
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from hub.core.errors import BadInput, ConfigError, ExternalAPIError, NotFound
from hub.core.sources import WebhookRoute

from .connection import Accounts
from .outbound import Sender

log = structlog.get_logger("crm_hub_plugins.email")
EXAMPLE = '{"to": ["client@example.com"], "subject": "Счёт", "body": "Добрый день!", "reply_to": 123}'


def _error(status: int, code: str, detail: str) -> JSONResponse:
    return JSONResponse({"error": code, "detail": detail}, status_code=status)


def _list(value: Any, name: str) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return [v.strip() for v in value.split(",") if v.strip()]
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return value
    raise BadInput(f"'{name}' must be an address or a list of addresses")


def routes(accounts: Accounts) -> list[WebhookRoute]:
    async def send_email(request: Request) -> Response:
        """Send ``{to, subject, body, cc?, reply_to?, mailbox?}``; 201 with the Message-ID and timeline items."""
        if "application/json" not in request.headers.get("content-type", ""):
            return _error(415, "unsupported_media_type", "send the email as application/json")
        try:
            data = json.loads(await request.body())
        except (ValueError, UnicodeDecodeError) as exc:
            return _error(400, "malformed_json", f"the body is not valid JSON: {exc}")
        if not isinstance(data, dict):
            return _error(422, "bad_input", f"send a JSON object such as {EXAMPLE}")
        try:
            reply_to = data.get("reply_to")
            if reply_to is not None and (not isinstance(reply_to, int) or isinstance(reply_to, bool)):
                raise BadInput("'reply_to' must be a timeline item id (an integer)")
            if not isinstance(data.get("subject"), str) or not isinstance(data.get("body"), str):
                raise BadInput(f"'subject' and 'body' must be strings; for example {EXAMPLE}")
            mailbox = data.get("mailbox")
            sender = Sender(accounts.get(mailbox if isinstance(mailbox, str) else None))
            sent = await run_in_threadpool(
                sender.send,
                _list(data.get("to"), "to"),
                data["subject"],
                data["body"],
                cc=_list(data.get("cc"), "cc"),
                reply_to_item=reply_to,
            )
        except NotFound as exc:
            return _error(404, "not_found", str(exc))
        except BadInput as exc:
            return _error(422, "bad_input", str(exc))
        except ConfigError as exc:
            return _error(409, "not_configured", str(exc))
        except ExternalAPIError as exc:
            log.warning("email.send_failed", error=str(exc))
            return _error(502, "smtp_error", str(exc))
        return JSONResponse(sent.as_dict(), status_code=201)

    return [WebhookRoute("/api/emails", send_email, ("POST",), "email_send")]
