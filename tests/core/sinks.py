"""Test sinks: a real Sink subclass that records what it receives and can be told to fail."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any

from hub import hookimpl
from hub.core.errors import ExternalAPIError, FatalDelivery
from hub.core.events import Event
from hub.core.sinks import Sink


class RecordingSink(Sink):
    max_batch = 10

    def __init__(self, name: str, system: str, account: str = "") -> None:
        self.name, self.system, self.account = name, system, account
        self.received: list[Event] = []
        self.calls = 0
        self.fail_times = 0
        self.fatal_for: set[int] = set()  # client ids whose events can never be delivered
        self.lock = threading.Lock()

    def deliver(self, events: Sequence[Event]) -> None:
        with self.lock:
            self.calls += 1
            if self.fail_times > 0:
                self.fail_times -= 1
                raise ExternalAPIError("remote is down (test)", retriable=True)
            for event in events:
                if event.client_id in self.fatal_for:
                    raise FatalDelivery(f"client {event.client_id} rejected (test)")
            self.received.extend(events)

    def event_ids(self) -> list[str]:
        with self.lock:
            return [e.event_id for e in self.received]


class SinkPlugin:
    """A plugin object offering the given sinks."""

    def __init__(self, *sinks: Sink) -> None:
        self.sinks = sinks

    @hookimpl
    def hub_register_sinks(self, hub: Any, register: Any) -> None:
        for sink in self.sinks:
            register(sink)
