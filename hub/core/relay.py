"""The outbox relay: moves committed events from the database outbox onto the bus, in order, at least once.

On a durable transport (RabbitMQ) a row is marked relayed once the broker confirmed it. On the embedded
in-process transport the database stays the only durable copy: a row is marked relayed only when every sink
has recorded its delivery, and after a restart everything not yet complete is published again (sinks drop
what they already delivered). On PostgreSQL one relay runs at a time, elected by an advisory lock.
"""

from __future__ import annotations

import contextlib
import threading
import time
import zlib
from collections.abc import Callable, Sequence
from typing import Any

import structlog
from kombu import Producer
from sqlalchemy import func, select, text, update

from hub.core import schema as s
from hub.core.bus import BusConfig
from hub.core.metrics import METRICS
from hub.core.store import Store

log = structlog.get_logger("hub.relay")
RELAY_LOCK = 0x4855425245  # "HUBRE"


class Relay:
    def __init__(self, store: Store, bus: BusConfig, sinks: Callable[[], list[str]], *, batch: int = 500) -> None:
        self.store = store
        self.bus = bus
        self.sinks = sinks
        self.batch = batch
        self.wake = threading.Event()
        self._cursor = 0  # highest outbox id published by this process (embedded transport)
        self._lock_conn: Any = None
        self._last_complete = 0.0
        self.last_round = time.monotonic()  # when the loop last went round: readiness tells a stuck relay by it
        self.max_inflight = max(4 * batch, 2000)
        self._lock = threading.Lock()
        self._waiting: dict[int, set[str]] = {}  # outbox row -> sinks that have not recorded it yet
        self._rows_of: dict[str, list[int]] = {}  # event id -> its outbox rows still waiting
        self._done: list[int] = []

    # --- leadership (PostgreSQL) -------------------------------------------------------------------------
    def _lead(self) -> bool:
        if not self.store.is_postgres:
            return True
        if self._lock_conn is None:
            conn = self.store.engine.connect()
            # one lock per bus namespace: hubs sharing a PostgreSQL server do not wait for each other's relay
            key = RELAY_LOCK ^ zlib.crc32(self.bus.namespace.encode())
            got = conn.execute(text("SELECT pg_try_advisory_lock(:k)"), {"k": key}).scalar()
            conn.commit()
            if not got:
                conn.close()
                return False
            self._lock_conn = conn
            log.info("relay leadership taken")
        return True

    def _release(self) -> None:
        if self._lock_conn is not None:
            try:
                self._lock_conn.close()
            finally:
                self._lock_conn = None

    # --- one round ---------------------------------------------------------------------------------------
    def start_cursor(self) -> None:
        """Begin after the last row every sink has: all incomplete rows are published again."""
        with self.store.read() as conn:
            low = conn.execute(select(func.min(s.outbox.c.id)).where(s.outbox.c.relayed.is_(False))).scalar()
        self._cursor = (low - 1) if low is not None else self._max_id()
        with self._lock:
            self._waiting.clear()
            self._rows_of.clear()

    def _max_id(self) -> int:
        with self.store.read() as conn:
            return int(conn.execute(select(func.max(s.outbox.c.id))).scalar() or 0)

    def relay_once(self, producer: Producer) -> int:
        """Publish up to ``batch`` pending rows; return how many were published."""
        query = (
            select(s.outbox.c.id, s.outbox.c.client_id, s.outbox.c.payload, s.outbox.c.event_id, s.outbox.c.target_sink)
            .order_by(s.outbox.c.id)
            .limit(self.batch)
        )
        if self.bus.durable:
            query = query.where(s.outbox.c.relayed.is_(False))
        else:
            query = query.where(s.outbox.c.id > self._cursor)
        if not self.bus.durable:
            room = self.max_inflight - self._inflight
            if room <= 0:
                return 0
            query = query.limit(min(self.batch, room))
        with self.store.read() as conn:
            rows = conn.execute(query).all()
        if not rows:
            return 0
        if not self.bus.durable:
            self._await(rows)
        for row in rows:
            headers = {"event_id": row.event_id, "outbox_id": row.id}
            if row.target_sink:
                producer.publish(
                    row.payload,
                    exchange="",
                    content_type="application/json",
                    content_encoding="utf-8",
                    delivery_mode=2,
                    headers=headers,
                    routing_key=self.bus.queue_name(row.target_sink, self.bus.partition(row.client_id)),
                )
            else:
                producer.publish(
                    row.payload,
                    exchange=self.bus.exchange,
                    routing_key=self.bus.routing_key(row.client_id),
                    content_type="application/json",
                    content_encoding="utf-8",
                    delivery_mode=2,
                    headers=headers,
                )
        if self.bus.is_amqp:
            # one AMQP transaction per batch: commit-ok comes once the broker has stored every message
            producer.channel.tx_commit()
        if self.bus.durable:
            ids = [r.id for r in rows]
            with self.store.write() as conn:
                conn.execute(update(s.outbox).where(s.outbox.c.id.in_(ids)).values(relayed=True))
        self._cursor = rows[-1].id
        METRICS.events_relayed.inc(len(rows))
        return len(rows)

    # --- completion on the embedded bus -----------------------------------------------------------------
    def _await(self, rows: Sequence[Any]) -> None:
        """Remember which sinks still have to record each published row (the sink workers tell us)."""
        sinks = set(self.sinks())
        with self._lock:
            for row in rows:
                waiting = {row.target_sink} if row.target_sink else set(sinks)
                if not waiting:
                    self._done.append(row.id)
                    continue
                self._waiting[row.id] = waiting
                self._rows_of.setdefault(row.event_id, []).append(row.id)

    def on_recorded(self, sink: str, event_ids: list[str]) -> None:
        """A sink worker recorded these events (delivered, skipped or dead): called in its thread."""
        with self._lock:
            for event_id in event_ids:
                row_ids = self._rows_of.get(event_id)
                if not row_ids:
                    continue
                for row_id in list(row_ids):
                    waiting = self._waiting.get(row_id)
                    if waiting is None:
                        continue
                    waiting.discard(sink)
                    if not waiting:
                        del self._waiting[row_id]
                        row_ids.remove(row_id)
                        self._done.append(row_id)
                if not row_ids:
                    del self._rows_of[event_id]

    @property
    def _inflight(self) -> int:
        return len(self._waiting)

    def complete(self) -> int:
        """Embedded transport: mark relayed the rows every sink has recorded; return how many are still out.

        The relay publishes no further than ``max_inflight`` ahead of the slowest sink, so the in-process bus
        holds a bounded backlog, and nothing here reads the database: the sink workers report what they record.
        """
        if self.bus.durable:
            return 0
        with self._lock:
            done, self._done = self._done, []
        if done:
            with self.store.write() as conn:
                conn.execute(update(s.outbox).where(s.outbox.c.id.in_(done)).values(relayed=True))
        return self._inflight

    def lag(self) -> int:
        with self.store.read() as conn:
            return int(
                conn.execute(select(func.count()).select_from(s.outbox).where(s.outbox.c.relayed.is_(False))).scalar()
                or 0
            )

    @staticmethod
    def _poll_broker(conn: Any) -> None:
        """Read what the broker sent (heartbeats, a close) and beat: an idle relay notices a broker that went
        away, and says so in the log, instead of finding out at the next publish."""
        try:
            conn.drain_events(timeout=0.001)
        except (TimeoutError, OSError) as exc:
            if not isinstance(exc, TimeoutError) and "timed out" not in str(exc):
                raise
        conn.heartbeat_check()

    # --- the loop ----------------------------------------------------------------------------------------
    def run(self, stop: threading.Event, *, idle: float = 0.1) -> None:
        """Relay until ``stop`` is set; reconnects to the bus and the database after failures."""
        backoff = 0.5
        while not stop.is_set():
            try:
                if not self._lead():
                    self.last_round = time.monotonic()  # standing by is healthy: the leader's rows are watched
                    stop.wait(2.0)
                    continue
                self.start_cursor()
                with self.bus.connection() as conn:
                    channel = conn.channel()
                    if self.bus.is_amqp:
                        channel.tx_select()
                    producer = Producer(channel)
                    self.bus.declare(conn, self.sinks())
                    last_poll = time.monotonic()
                    while not stop.is_set():
                        self.wake.clear()
                        moved = self.relay_once(producer)
                        self.last_round = time.monotonic()
                        if self.bus.is_amqp and self.last_round - last_poll > 2.0:
                            self._poll_broker(conn)
                            last_poll = self.last_round
                        now = time.monotonic()
                        if not self.bus.durable and (len(self._done) >= self.batch or now - self._last_complete > 0.2):
                            self.complete()
                            self._last_complete = now
                        if moved < self.batch:
                            self.wake.wait(idle)
                        backoff = 0.5
            except Exception as exc:  # the broker or the database went away: keep trying, loudly
                log.error("relay failed; retrying", error=str(exc), error_type=type(exc).__name__, retry_in=backoff)
                self._release()
                stop.wait(backoff)
                backoff = min(backoff * 2, 30.0)
        # final completion pass so a clean stop leaves no needless re-publish
        with contextlib.suppress(Exception):
            self.complete()
        self._release()
