"""Live calls for the logged-in operator (the telephony plugin's event stream, filtered to their extension)
and click-to-call from the card. Both go through the routes the telephony plugin registered with the hub, so the
console knows nothing of PBXs; without a telephony plugin the pop-up stays silent and the call button explains.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import quote

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response, StreamingResponse
from starlette.types import Message

from hub.web.console.access import PREFIX, checked_form, hub_of, operator, see_other
from hub.web.console.security import Viewer

router = APIRouter()

STREAM_ROUTE = "telephony_live_stream"
CALL_ROUTE = "telephony_click_to_call"


def _plugin_route(request: Request, name: str) -> Any:
    for route in hub_of(request).routes:
        if route.name == name:
            return route.handler
    return None


def _inner_request(request: Request, path: str, method: str, body: bytes = b"") -> Request:
    """A request to a plugin route made on behalf of the logged-in user (who passed the console's checks)."""
    scope = dict(request.scope)
    scope.update(
        method=method,
        path=path,
        raw_path=path.encode(),
        query_string=b"",
        headers=[(b"content-type", b"application/json"), (b"accept", b"*/*")],
    )
    sent = False

    async def receive() -> Message:
        nonlocal sent
        if sent:
            return await request.receive()  # the stream waits here for the browser to go away
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    return Request(scope, receive)


def _for_extension(chunk: bytes, extension: str, shown: set[str]) -> bool:
    """Whether one server-sent event concerns this operator's extension (``ended`` of a call they were shown)."""
    text = chunk.decode("utf-8", "replace")
    if not text.startswith("event:"):
        return text.startswith(":")  # comments keep the connection alive
    data_line = next((line for line in text.splitlines() if line.startswith("data:")), "")
    try:
        call = json.loads(data_line[5:])
    except ValueError:
        return False
    key = str(call.get("key"))
    if text.startswith("event: ended"):
        if key in shown:
            shown.discard(key)
            return True
        return False
    if str(call.get("extension") or "") == extension:
        shown.add(key)
        return True
    return False


@router.get("/calls/stream")
async def call_stream(request: Request, viewer: Viewer = Depends(operator)) -> Response:
    """Server-sent events of the calls ringing at (or answered by) the viewer's extension."""
    extension = viewer.user.extension
    handler = _plugin_route(request, STREAM_ROUTE)
    if handler is None or not extension:
        return Response(status_code=204)  # EventSource stops retrying on 204
    inner = await handler(_inner_request(request, "/api/calls/live/stream", "GET"))
    if not isinstance(inner, StreamingResponse):
        return Response(status_code=204)
    shown: set[str] = set()

    async def filtered() -> AsyncIterator[bytes]:
        async for chunk in inner.body_iterator:
            raw = chunk if isinstance(chunk, bytes) else str(chunk).encode()
            if _for_extension(raw, extension, shown):
                yield raw

    return StreamingResponse(
        filtered(), media_type="text/event-stream", headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
    )


@router.post("/clients/{client_id}/call")
async def click_to_call(request: Request, client_id: int, viewer: Viewer = Depends(operator)) -> Response:
    """Ring the viewer's extension, then dial the client's phone; back to the card with the outcome."""
    form = await checked_form(request, viewer)
    phone = str(form.get("phone") or "")[:64]
    card = f"{PREFIX}/clients/{client_id}"
    handler = _plugin_route(request, CALL_ROUTE)
    if not viewer.user.extension:
        return see_other(f"{card}?call_error=no_extension")
    if handler is None:
        return see_other(f"{card}?call_error={quote('no telephony plugin is loaded')}")
    body = json.dumps({"extension": viewer.user.extension, "phone": phone}).encode()
    answer = await handler(_inner_request(request, "/api/calls", "POST", body))
    if answer.status_code >= 400:
        try:
            detail = json.loads(bytes(answer.body)).get("detail") or "error"
        except (ValueError, AttributeError):
            detail = "error"
        return see_other(f"{card}?call_error={quote(str(detail)[:200])}")
    return see_other(f"{card}?called={quote(phone)}")
