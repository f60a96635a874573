"""A tiny crm-hub plugin: ``POST /webhooks/example`` records a note, and a sink appends events to a file.

The webhook exists only once ``HUB_EXAMPLE__TOKEN`` (16+ characters) is set; senders send it as
``Authorization: Bearer <token>``. Every webhook verifies its sender like this one.

Install it with ``pip install ./examples/hub-example-plugin``; ``hub plugins list`` then shows ``example``.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import click
from pydantic import BaseModel
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse

from hub import hookimpl
from hub.core.auth import bearer_matches
from hub.core.errors import BadInput
from hub.core.events import ClientKey, Event, InteractionObservation, SourceRef
from hub.core.settings import StrongSecret
from hub.core.sinks import Sink
from hub.core.sources import SenderCheck, WebhookRoute

__version__ = "1.0.0"


class ExampleSettings(BaseModel):
    """``HUB_EXAMPLE__EVENTS_FILE``: where the sink appends the events it receives (JSON Lines);
    ``HUB_EXAMPLE__TOKEN``: the bearer token the webhook's senders present."""

    events_file: Path | None = None
    token: StrongSecret | None = None


class FileSink(Sink):
    """Appends every event to a file, once per event id: a file is an external system like any other."""

    max_batch = 100

    def __init__(self, path: Path) -> None:
        self.name, self.system, self.path = "example-file", "file", path

    def deliver(self, events: Sequence[Event]) -> None:
        seen = set()
        if self.path.exists():
            seen = {json.loads(line)["event_id"] for line in self.path.read_text("utf-8").splitlines() if line}
        with self.path.open("a", encoding="utf-8") as fh:
            for event in events:
                if event.event_id not in seen:  # idempotent: a redelivered event is written once
                    fh.write(event.model_dump_json() + "\n")


@hookimpl
def hub_register_settings(register: Any) -> None:
    register("example", ExampleSettings)


@hookimpl
def hub_register_routes(hub: Any, register: Any) -> None:
    token = hub.plugin_settings("example").token

    async def note(request: Request) -> JSONResponse:
        if token is None or not bearer_matches(request.headers.get("authorization"), token):
            return JSONResponse({"error": "send 'Authorization: Bearer <HUB_EXAMPLE__TOKEN>'"}, status_code=401)
        data = await request.json()
        if not isinstance(data, dict) or not data.get("id") or not data.get("phone"):
            return JSONResponse({"error": "give id, phone and text"}, status_code=422)
        obs = InteractionObservation(
            source=SourceRef(system="example", entity="note", id=str(data["id"])),
            channel="note",
            client=ClientKey(phones=[data["phone"]]),
            body=data.get("text"),
        )
        try:
            result = await run_in_threadpool(hub.ingest, obs)  # stored before the answer; the loop stays free
        except BadInput as exc:
            return JSONResponse({"error": str(exc)}, status_code=422)
        return JSONResponse({"client_id": result.client_id})

    sender = SenderCheck("the example token", token is not None, "set HUB_EXAMPLE__TOKEN (16+ characters)")
    register(WebhookRoute("/webhooks/example", note, sender=sender))


@hookimpl
def hub_register_sinks(hub: Any, register: Any) -> None:
    path = hub.plugin_settings("example").events_file
    if path is not None:
        register(FileSink(Path(path)))


@hookimpl
def hub_register_commands(register: Any) -> None:
    @click.command("example")
    @click.argument("name", default="мир")
    def hello(name: str) -> None:
        """Say hello (shows how a plugin adds a CLI command)."""
        click.echo(f"Привет, {name}!")

    register(hello)


@hookimpl
def hub_health(hub: Any) -> dict[str, Any]:
    path = hub.plugin_settings("example").events_file
    return {"status": "ok" if path else "degraded", "events_file": str(path) if path else "not set"}
