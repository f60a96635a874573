"""How far behind the hub is: outbox rows not yet relayed, events waiting per sink and partition queue, open
dead letters. Read from the database and the bus, so every process tells the same truth about the whole hub;
the metrics endpoints set their gauges from here at scrape time, and the catch-up log uses it too."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import structlog
from sqlalchemy import func, select

from hub.core import schema as s
from hub.core.metrics import METRICS

if TYPE_CHECKING:
    from hub.core.hub import Hub

log = structlog.get_logger("hub.backlog")


@dataclass
class Backlog:
    outbox_pending: int = 0
    outbox_oldest_s: float = 0.0
    queues: dict[str, dict[int, int]] = field(default_factory=dict)  # sink -> partition -> waiting messages
    dead_letters: dict[str, int] = field(default_factory=dict)  # queue -> open letters

    def waiting(self, sink: str | None = None) -> int:
        """Events not yet handled: in the outbox plus in the queues (of one sink, or of all)."""
        queued = sum(sum(p.values()) for name, p in self.queues.items() if sink is None or name == sink)
        return queued + self.outbox_pending


def queue_depths(hub: Hub) -> dict[str, dict[int, int]]:
    """Messages ready in each partition queue of each sink (passive declare: nothing is created)."""
    depths: dict[str, dict[int, int]] = {}
    if not hub.sinks:
        return depths
    with hub.bus.connection() as conn:
        channel = conn.channel()
        for sink in sorted(hub.sinks):
            per: dict[int, int] = {}
            for partition in range(hub.bus.partitions):
                name = hub.bus.queue_name(sink, partition)
                try:
                    per[partition] = int(channel.queue_declare(name, passive=True).message_count)
                except Exception:  # not declared yet (no worker ran): nothing waits in it
                    channel = conn.channel()
                    per[partition] = 0
            depths[sink] = per
    return depths


def read_backlog(hub: Hub, *, with_queues: bool = True) -> Backlog:
    with hub.store.read() as conn:
        pending, oldest = conn.execute(
            select(func.count(), func.min(s.outbox.c.created_at)).where(s.outbox.c.relayed.is_(False))
        ).one()
        letters = conn.execute(
            select(s.dead_letters.c.queue, func.count())
            .where(s.dead_letters.c.status == "open")
            .group_by(s.dead_letters.c.queue)
        ).all()
    age = 0.0
    if oldest is not None:
        if oldest.tzinfo is None:
            oldest = oldest.replace(tzinfo=UTC)
        age = max(0.0, (datetime.now(UTC) - oldest).total_seconds())
    backlog = Backlog(int(pending or 0), age, dead_letters={q: int(n) for q, n in letters})
    if with_queues:
        backlog.queues = queue_depths(hub)
    return backlog


def refresh_gauges(hub: Hub) -> None:
    """Set the whole-hub gauges before a scrape; a part that cannot be read is logged and left as it was."""
    try:
        backlog = read_backlog(hub, with_queues=False)
        METRICS.outbox_pending.set(backlog.outbox_pending)
        METRICS.outbox_oldest.set(backlog.outbox_oldest_s)
        METRICS.dead_letters_open.clear()
        for queue, count in backlog.dead_letters.items():
            METRICS.dead_letters_open.labels(queue).set(count)
    except Exception as exc:  # metrics must answer even when the database does not
        log.warning("could not read the outbox and dead letters for metrics", error=str(exc))
    try:
        for sink, partitions in queue_depths(hub).items():
            for partition, depth in partitions.items():
                METRICS.queue_depth.labels(sink, str(partition)).set(depth)
    except Exception as exc:
        log.warning("could not read queue depths for metrics", error=str(exc), error_type=type(exc).__name__)
    if hub.started and hub.role in ("all", "worker"):
        METRICS.relay_round_age.set(time.monotonic() - hub.relay.last_round)
