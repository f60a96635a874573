"""Request bodies read within bounds: a chunked body capped before any handler runs, and JSON bodies parsed
with ``hub.core.jsontext`` (bounded nesting, no NaN or Infinity), off the event loop when large."""

from __future__ import annotations

from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.types import Message, Receive

from hub.core.jsontext import MAX_DEPTH, parse_json

THREADPOOL_BYTES = 256 * 1024  # larger bodies are parsed off the event loop


async def read_json(raw: bytes, *, max_depth: int = MAX_DEPTH) -> Any:
    """:func:`hub.core.jsontext.parse_json`, off the event loop for a large body; raises ``BadJSON``."""
    if len(raw) > THREADPOOL_BYTES:
        return await run_in_threadpool(parse_json, raw, max_depth=max_depth)
    return parse_json(raw, max_depth=max_depth)


async def read_capped(receive: Receive, limit: int) -> Receive | None:
    """Read a whole request body of at most ``limit`` bytes; return a ``receive`` that replays it, or ``None``
    when the body is larger (the rest is left unread)."""
    parts: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            first: Message = message  # the client went away: let the application see that
            break
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            return None
        parts.append(chunk)
        if not message.get("more_body", False):
            first = {"type": "http.request", "body": b"".join(parts), "more_body": False}
            break
    replayed = False

    async def replay() -> Message:
        nonlocal replayed
        if not replayed:
            replayed = True
            return first
        return await receive()

    return replay
