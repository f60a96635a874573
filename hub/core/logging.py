"""One way to log: structlog, JSON when not on a TTY, pretty on a TTY, secrets redacted everywhere.

Standard-library loggers (uvicorn, sqlalchemy, kombu) go through the same processors, so a token in an
access-log query string is masked like one in the hub's own events.
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import Iterable, MutableMapping
from typing import Any

import structlog

SENSITIVE_KEYS = {
    "token",
    "access_token",
    "refresh_token",
    "secret",
    "client_secret",
    "password",
    "passwd",
    "authorization",
    "auth",
    "api_key",
    "apikey",
    "application_token",
    "webhook_url",
    "sign",
    "signature",
    "cookie",
    "api_salt",
    "vpbx_api_key",
    "vpbx_api_salt",
    "long_lived_token",
    "webhook_secret",
    "code",
    "api_token",
    "generic_token",
}
# user may be empty (redis://:pw@host); the password runs to the last "@" of the URL, so one holding "@" is masked
_URL_CREDENTIALS = re.compile(r"(?P<scheme>[a-z][a-z0-9+.-]*://)(?P<user>[^:/@\s'\"]*):(?P<pw>[^\s'\"]*)@", re.I)
_BITRIX_WEBHOOK = re.compile(r"(/rest/\d+/)[A-Za-z0-9]{6,}")
_QUERY_SECRET = re.compile(r"(?i)([?&](?:auth|access_token|refresh_token|token|code|secret|api_key)=)[^&\s\"']+")
# PostgreSQL's own error detail quotes the row ("Key (phone)=(+7916...) already exists", "Failing row contains")
_PG_DETAIL = re.compile(r"(DETAIL:)[^\n]*")
_BEARER = re.compile(r"(?i)(bearer\s+)[A-Za-z0-9._~+/=-]{8,}")

_secrets: list[str] = []  # longest first, so a secret that contains another is masked whole


def register_secrets(values: Iterable[str]) -> None:
    """Values that must never appear in a log line, whatever key they hide under and whatever their length."""
    known = set(_secrets)
    known.update(v for v in values if v)
    _secrets[:] = sorted(known, key=len, reverse=True)


def redact_text(text: str) -> str:
    for secret in _secrets:
        if secret in text:
            text = text.replace(secret, "***")
    text = _URL_CREDENTIALS.sub(lambda m: f"{m['scheme']}{m['user']}:***@", text)
    text = _BITRIX_WEBHOOK.sub(r"\1***", text)
    text = _QUERY_SECRET.sub(r"\1***", text)
    text = _PG_DETAIL.sub(r"\1 (client data hidden)", text)
    return _BEARER.sub(r"\1***", text)


def _redact_value(key: str, value: Any) -> Any:
    if key.lower() in SENSITIVE_KEYS and value not in (None, ""):
        return "***"
    if isinstance(value, str):
        return redact_text(value)
    if isinstance(value, dict):
        return {k: _redact_value(str(k), v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_redact_value("", v) for v in value]
    return value


def redact(_logger: Any, _name: str, event_dict: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    for key in list(event_dict):
        event_dict[key] = _redact_value(key, event_dict[key])
    return event_dict


def configure_logging(level: str = "info", fmt: str = "auto", stream: Any = None) -> None:
    stream = stream or sys.stderr
    use_json = fmt == "json" or (fmt == "auto" and not (hasattr(stream, "isatty") and stream.isatty()))
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.format_exc_info,
        redact,
    ]
    renderer: Any = (
        structlog.processors.JSONRenderer(ensure_ascii=False)
        if use_json
        else structlog.dev.ConsoleRenderer(colors=hasattr(stream, "isatty") and stream.isatty())
    )
    structlog.configure(
        processors=[*shared, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=False,
    )
    handler = logging.StreamHandler(stream)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=shared, processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, renderer]
        )
    )
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper())
    for noisy in ("sqlalchemy.engine", "amqp", "kombu", "httpx", "httpcore", "alembic", "uvicorn.access"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))
