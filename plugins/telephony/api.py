"""The calls API: live calls with the caller's summary (list and server-sent events), click-to-call, statistics."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from typing import Any

import structlog
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse

from hub.core.errors import BadInput, ConfigError
from hub.core.jsontext import BadJSON, parse_json
from hub.core.sources import WebhookRoute

from . import openapi
from .runtime import Telephony
from .stats import calls_report, parse_period

log = structlog.get_logger("hub.telephony.api")

POLL_S = 0.2
KEEPALIVE_S = 5.0


def _error(status: int, code: str, detail: str) -> JSONResponse:
    return JSONResponse({"error": code, "detail": detail}, status_code=status)


def routes(rt: Telephony) -> list[WebhookRoute]:
    # Fixed paths first: /api/calls/{request_id} would match them too.
    return [
        WebhookRoute("/api/calls/live", _live(rt), ("GET",), "telephony_live_calls"),
        WebhookRoute("/api/calls/live/stream", _stream(rt), ("GET",), "telephony_live_stream"),
        WebhookRoute("/api/calls/stats", _stats(rt), ("GET",), "telephony_call_stats", openapi=openapi.CALL_STATS),
        WebhookRoute(
            "/api/calls", _click_to_call(rt), ("POST",), "telephony_click_to_call", openapi=openapi.CLICK_TO_CALL
        ),
        WebhookRoute(
            "/api/calls/{request_id}",
            _request_status(rt),
            ("GET",),
            "telephony_click_to_call_status",
            openapi=openapi.CLICK_TO_CALL_STATUS,
        ),
    ]


def _live(rt: Telephony) -> Any:
    async def live_calls(request: Request) -> Response:
        """Calls ringing or in progress now, each with the caller's client summary (or null when unknown)."""
        return JSONResponse({"items": await run_in_threadpool(rt.live.calls)})

    return live_calls


def sse(event: str, data: dict[str, Any]) -> bytes:
    return f"event: {event}\ndata: {json.dumps(data, ensure_ascii=False, default=str)}\n\n".encode()


def _stream(rt: Telephony) -> Any:
    async def live_stream(request: Request) -> Response:
        """Server-sent events: ``ringing`` (with the client summary), ``active`` and ``ended`` for each call."""
        queue, unsubscribe = rt.live.subscribe()
        # Without the PBX listener in this process, calls heard elsewhere arrive through the shared state.
        poll = rt.hub.role != "all"

        async def events() -> AsyncIterator[bytes]:
            sent: dict[str, float] = {}
            try:
                yield b": live calls\n\n"
                for call in await run_in_threadpool(rt.live.calls):
                    sent[call["key"]] = call["updated"]
                    yield sse(call["state"], call)
                last_poll = last_write = time.monotonic()
                while True:
                    try:
                        message = await asyncio.wait_for(queue.get(), timeout=POLL_S if poll else KEEPALIVE_S)
                    except TimeoutError:
                        message = None
                    chunks: list[bytes] = []
                    if message is not None:
                        call = message["call"]
                        if message["event"] == "ended":
                            if sent.pop(call["key"], None) is not None or not poll:
                                chunks.append(sse("ended", call))
                        elif sent.get(call["key"]) != call["updated"]:
                            sent[call["key"]] = call["updated"]
                            chunks.append(sse(message["event"], call))
                    if poll and time.monotonic() - last_poll >= POLL_S:
                        last_poll = time.monotonic()
                        chunks += _diff(sent, await run_in_threadpool(rt.live.calls, max_staleness=POLL_S))
                    if not chunks and time.monotonic() - last_write >= KEEPALIVE_S:
                        chunks.append(b": keepalive\n\n")
                    for chunk in chunks:
                        yield chunk
                    if chunks:
                        last_write = time.monotonic()
            finally:
                unsubscribe()

        return StreamingResponse(
            events(),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        )

    return live_stream


def _diff(sent: dict[str, float], calls: list[dict[str, Any]]) -> list[bytes]:
    chunks = []
    current = {call["key"]: call for call in calls}
    for key, call in current.items():
        if sent.get(key) != call["updated"]:
            sent[key] = call["updated"]
            chunks.append(sse(call["state"], call))
    for key in [k for k in sent if k not in current]:
        del sent[key]
        chunks.append(sse("ended", {"key": key}))
    return chunks


def _click_to_call(rt: Telephony) -> Any:
    async def click_to_call(request: Request) -> Response:
        """Ring the operator's ``extension``, then dial ``phone``. 202 with the ``request_id`` to follow it."""
        try:
            data = parse_json(await request.body())
        except BadJSON as exc:
            return _error(400, exc.code, str(exc))
        if not isinstance(data, dict):
            return _error(422, "bad_input", 'send {"extension": "201", "phone": "+7 916 123-45-67"}')
        try:
            entry = await run_in_threadpool(
                rt.click.start, str(data.get("extension") or ""), str(data.get("phone") or "")
            )
        except BadInput as exc:
            log.warning("click_to_call_refused", problem=str(exc))
            return _error(422, "bad_input", str(exc))
        except ConfigError as exc:
            return _error(409, "not_configured", str(exc))
        return JSONResponse(entry, status_code=202, headers={"Location": f"/api/calls/{entry['request_id']}"})

    return click_to_call


def _request_status(rt: Telephony) -> Any:
    async def click_to_call_status(request: Request) -> Response:
        """How a click-to-call request went: pending, ringing, answered, requested (Mango, Zadarma) or failed."""
        request_id = request.path_params["request_id"]
        entry = await run_in_threadpool(rt.click.status, request_id)
        if entry is None:
            return _error(404, "not_found", f"no click-to-call request {request_id!r}")
        return JSONResponse(entry)

    return click_to_call_status


def _stats(rt: Telephony) -> Any:
    async def call_stats(request: Request) -> Response:
        """Per day, operator and direction: calls, answered, missed, missed and not called back, talk time.

        ``since``/``until``: ISO dates (whole days in ``tz``) or date-times; default the last 7 days. ``tz``: an
        IANA zone name (default UTC).
        """
        q = request.query_params
        try:
            start, end, tz = parse_period(q.get("since"), q.get("until"), q.get("tz"))
        except BadInput as exc:
            return _error(422, "bad_input", str(exc))

        def report() -> dict[str, Any]:
            return calls_report(
                lambda since: rt.hub.iter_items(kind="interaction", channel="call", since=since), start, end, tz
            )

        return JSONResponse(await run_in_threadpool(report))

    return call_stats
