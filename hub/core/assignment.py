"""Which worker process consumes which partition queues: the work of N workers spread over the partitions.

Every worker process keeps a heartbeat in ``hub.state`` (scope ``bus.workers``). The live workers, sorted by id,
share the partitions round-robin: partition ``p`` belongs to ``live[p % len(live)]``. A worker that joins takes its
share at the next heartbeat; a worker whose heartbeat is older than ``ttl`` (killed, frozen, cut off) is left out,
and its partitions are taken over by the others within ``ttl`` plus one heartbeat.

The assignment balances work; it does not guard order. Per-client order is kept by RabbitMQ's
single-active-consumer on every partition queue: when two workers briefly believe they own the same partition
(their views of the membership differ for a heartbeat), only one of them is active. A worker hands a partition over
only between flushes, with nothing unacknowledged in hand, so the next owner starts after the last event it acked.
"""

from __future__ import annotations

import os
import socket
import threading
import time
import uuid
from datetime import UTC, datetime

import structlog

from hub.core.state import StateStore

log = structlog.get_logger("hub.assignment")

SCOPE = "bus.workers"


def share(worker: str, live: list[str], partitions: int) -> frozenset[int]:
    """The partitions ``worker`` owns among the ``live`` workers (itself counted even when not yet listed)."""
    members = sorted(set(live) | {worker})
    index = members.index(worker)
    return frozenset(p for p in range(partitions) if p % len(members) == index)


class PartitionAssigner:
    """One per worker process: heartbeats, and tells each sink runner which partitions are its own."""

    def __init__(self, state: StateStore, partitions: int, *, heartbeat: float = 1.0, ttl: float = 5.0) -> None:
        self.state = state
        self.partitions = partitions
        self.heartbeat = heartbeat
        self.ttl = ttl
        self.worker_id = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
        self._owned: frozenset[int] = frozenset(range(partitions))
        self._lock = threading.Lock()
        self.version = 0  # bumped whenever the owned set changes; runners resubscribe when it moves

    def owned(self) -> frozenset[int]:
        with self._lock:
            return self._owned

    def beat(self) -> frozenset[int]:
        """Write this worker's heartbeat, read the others', recompute the share; return the owned partitions."""
        now = time.time()
        self.state.put(SCOPE, self.worker_id, {"at": now, "since": datetime.now(UTC).isoformat()})
        live: list[str] = []
        for worker, value in self.state.items(SCOPE).items():
            at = value.get("at", 0) if isinstance(value, dict) else 0
            if now - at <= self.ttl:
                live.append(worker)
            elif now - at > 60 * self.ttl:
                self.state.delete(SCOPE, worker)  # long gone: keep the membership list short
        owned = share(self.worker_id, live, self.partitions)
        with self._lock:
            if owned != self._owned:
                log.info(
                    "partitions reassigned",
                    worker=self.worker_id,
                    workers=len(set(live) | {self.worker_id}),
                    owned=sorted(owned),
                )
                self._owned = owned
                self.version += 1
        return owned

    def run(self, stop: threading.Event) -> None:
        """Heartbeat until ``stop``; then leave the membership so the others take over at once."""
        while not stop.is_set():
            try:
                self.beat()
            except Exception as exc:  # the database is away: keep what we own, SAC keeps order either way
                log.warning("worker heartbeat failed", worker=self.worker_id, error=str(exc))
            stop.wait(self.heartbeat)
        try:
            self.state.delete(SCOPE, self.worker_id)
        except Exception as exc:
            log.warning("could not leave the worker list", worker=self.worker_id, error=str(exc))
