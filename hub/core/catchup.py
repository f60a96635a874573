"""Sink catch-up after a bulk load, reported: log lines with done, total and an ETA while a backlog drains.

A worker reads the backlog (``hub.core.backlog``) every few seconds; once more than ``threshold`` events
wait, it reports through ``hub.progress.ProgressReporter`` (log lines, never a bar: a daemon has no terminal)
until the backlog is gone. Events that arrive meanwhile raise the total, so the ETA stays honest.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

import structlog

from hub.core.backlog import read_backlog
from hub.progress import ProgressReporter

if TYPE_CHECKING:
    from hub.core.hub import Hub

log = structlog.get_logger("hub.catchup")


class CatchUp:
    def __init__(self, hub: Hub, *, threshold: int = 1000, every: float = 5.0, log_every: float = 10.0) -> None:
        self.hub = hub
        self.threshold = threshold
        self.every = every
        self.log_every = log_every
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="catch-up", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def waiting(self) -> dict[str, int]:
        """Events each part still has to handle: ``relay`` (the outbox) and, on a broker, each sink's queues.
        On the embedded bus an outbox row stays pending until every sink has it, so the outbox is the total."""
        backlog = read_backlog(self.hub, with_queues=self.hub.bus.durable)
        if not self.hub.bus.durable:
            return {"sinks": backlog.outbox_pending}
        found = {"relay": backlog.outbox_pending}
        for sink, partitions in backlog.queues.items():
            found[f"sink {sink}"] = sum(partitions.values())
        return found

    def _run(self) -> None:
        while not self._stop.wait(self.every):
            try:
                first = self.waiting()
                if max(first.values(), default=0) < self.threshold:
                    continue
                self._report(first)
            except Exception as exc:  # the backlog is read again at the next tick
                log.warning("could not read the backlog", error=str(exc), error_type=type(exc).__name__)

    def _report(self, first: dict[str, int]) -> None:
        log.info("catching up", waiting=first)
        previous = dict(first)
        done = dict.fromkeys(first, 0)
        with ProgressReporter(bar=False, log_every=self.log_every) as progress:
            for name, count in first.items():
                progress.advance(f"catch-up {name}", 0, total=count)
            while not self._stop.wait(self.every):
                now = self.waiting()
                for name, count in now.items():
                    handled = max(0, previous.get(name, count) - count)
                    done[name] = done.get(name, 0) + handled
                    progress.advance(f"catch-up {name}", handled, total=done[name] + count)
                previous = now
                if sum(now.values()) == 0:
                    break
        log.info("caught up", handled=done)
