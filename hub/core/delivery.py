"""Driving one sink: consume its partition queues, batch, skip echoes and repeats, retry, dead-letter.

Each event's outcome (delivered, skipped, dead) is recorded in ``deliveries`` before the message is
acknowledged, so a redelivered message is never delivered twice; a crash between the remote effect and that
record re-delivers it, which the sink's idempotency (ref map, search before create) absorbs.
"""

from __future__ import annotations

import threading
import time
import traceback
from collections import defaultdict
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import structlog
from kombu import Consumer, Message
from pydantic import ValidationError
from sqlalchemy import select
from sqlalchemy.dialects import postgresql, sqlite

from hub.core import schema as s
from hub.core.assignment import PartitionAssigner
from hub.core.bus import BusConfig
from hub.core.dlq import dead_letter_error, record_dead_letter
from hub.core.errors import ExternalAPIError
from hub.core.events import Event
from hub.core.metrics import METRICS
from hub.core.ratelimit import Limiter
from hub.core.retry import RetryPolicy
from hub.core.sinks import Sink
from hub.core.store import Store

log = structlog.get_logger("hub.delivery")


@dataclass
class _Pending:
    message: Message
    event: Event | None
    raw: str
    error: str | None = None


def _now() -> datetime:
    return datetime.now(UTC)


class SinkRunner:
    """Consumes a sink's queues and delivers to it until stopped."""

    def __init__(
        self,
        store: Store,
        bus: BusConfig,
        sink: Sink,
        policy: RetryPolicy,
        limiter: Limiter | None = None,
        *,
        timeout: float | None = None,
        on_recorded: Any = None,
        assigner: PartitionAssigner | None = None,
    ) -> None:
        self.store = store
        self.bus = bus
        self.sink = sink
        self.policy = policy
        self.limiter = limiter
        self.timeout = timeout
        self._executor: ThreadPoolExecutor | None = None
        self.on_recorded = on_recorded  # (sink name, event ids) -> None: the embedded relay's completion
        # spread the partitions over the worker processes, unless the sink wants one process for all of them
        self.assigner = assigner if sink.spread else None
        self.stop = threading.Event()
        self.busy = threading.Lock()
        self.delivered = 0
        self._buffer: dict[int, list[_Pending]] = defaultdict(list)

    # --- receiving ---------------------------------------------------------------------------------------
    def _on_message(self, message: Message) -> None:
        """Keep the raw body: one pass of pydantic's JSON parser instead of json.loads and a second walk."""
        body = message.body
        raw = body.decode("utf-8", "replace") if isinstance(body, bytes) else str(body)
        try:
            event = Event.model_validate_json(raw)
        except (ValidationError, ValueError) as exc:
            self._buffer[-1].append(_Pending(message, None, raw, error=f"unreadable event: {exc}"))
            return
        self._buffer[self.bus.partition(event.client_id)].append(_Pending(message, event, raw))

    # --- the loop ----------------------------------------------------------------------------------------
    def run(self, stop: threading.Event | None = None) -> None:
        stop = stop or self.stop
        backoff = 0.5
        # enough in hand to fill a batch in every partition, so bulk work goes out in full batches
        prefetch = min(max(self.sink.max_batch * self.bus.partitions, 64), 5000)
        while not stop.is_set():
            version = self.assigner.version if self.assigner else 0
            queues = self._queues()
            if not queues:  # more workers than partitions: this one waits for a share
                stop.wait(0.5)
                continue
            try:
                with self.bus.connection() as conn:
                    channel = conn.channel()
                    self.bus.declare(conn, [self.sink.name])
                    consumer = Consumer(
                        channel,
                        queues=queues,
                        on_message=self._on_message,
                        accept=["json", "application/json"],
                        auto_declare=False,
                        prefetch_count=prefetch,
                    )
                    with consumer:
                        while not stop.is_set():
                            if self._drain(conn, 0.2):
                                # take whatever else is already waiting, to fill batches
                                for _ in range(prefetch):
                                    if not self._drain(conn, 0):
                                        break
                            if self._buffer:
                                with self.busy:
                                    self._flush(stop)
                            if self.bus.is_amqp:
                                conn.heartbeat_check()  # a silent network loss ends in a reconnect and a log line
                            backoff = 0.5
                            if self.assigner is not None and self.assigner.version != version:
                                # nothing unacknowledged in hand: hand partitions over between flushes
                                break
            except Exception as exc:
                self._buffer.clear()  # unacked messages come back from the broker
                if stop.is_set():
                    break
                log.error(
                    "sink consumer failed; reconnecting",
                    sink=self.sink.name,
                    error=str(exc),
                    error_type=type(exc).__name__,
                    retry_in=backoff,
                )
                stop.wait(backoff)
                backoff = min(backoff * 2, 30.0)

    def _queues(self) -> list[Any]:
        """The partition queues this process consumes: its share, or all of them when nothing spreads work."""
        queues = self.bus.sink_queues(self.sink.name)
        if self.assigner is None:
            return queues
        owned = self.assigner.owned()
        return [q for p, q in enumerate(queues) if p in owned]

    @staticmethod
    def _drain(conn: Any, timeout: float) -> bool:
        try:
            conn.drain_events(timeout=timeout)
        except TimeoutError:
            return False
        except OSError as exc:
            if "timed out" not in str(exc):
                raise
            return False
        return True

    def _flush(self, stop: threading.Event) -> None:
        """Deliver what is in hand, partition by partition in order; then record every outcome in one write and
        acknowledge. One write per flush, not per batch: on SQLite each write waits its turn behind ingest."""
        buffers, self._buffer = self._buffer, defaultdict(list)
        handled: list[_Pending] = [p for pending in buffers.values() for p in pending]
        in_hand = [p.event.event_id for p in handled if p.event is not None]
        seen = self._already_done(in_hand)
        outcomes: dict[str, tuple[str, Event | None, str]] = {}
        for _partition, pending in sorted(buffers.items()):
            for start in range(0, len(pending), self.sink.max_batch):
                self._handle(pending[start : start + self.sink.max_batch], seen, outcomes, stop)
        self._record(outcomes)
        if self.on_recorded is not None:
            self.on_recorded(self.sink.name, [*outcomes, *seen])
        for p in handled:
            p.message.ack()

    # --- one batch ---------------------------------------------------------------------------------------
    def _handle(
        self,
        batch: list[_Pending],
        seen: set[str],
        outcomes: dict[str, tuple[str, Event | None, str]],
        stop: threading.Event,
    ) -> None:
        for p in batch:
            if p.event is None:
                self._dead_letter(p.raw, None, p.error or "unreadable", 1, {"reason": "unreadable message"})
        todo: list[Event] = []
        for event in (p.event for p in batch if p.event is not None):
            if event.event_id in seen or event.event_id in outcomes or event in todo:
                continue
            if self.sink.origin_matches(event):
                outcomes[event.event_id] = ("skipped", event, "echo")
            elif not self.sink.accepts(event):
                outcomes[event.event_id] = ("skipped", event, "not accepted")
            else:
                todo.append(event)
        if todo:
            self._deliver_with_retries(todo, outcomes, stop)

    def _already_done(self, event_ids: list[str]) -> set[str]:
        if not event_ids:
            return set()
        with self.store.read() as conn:
            rows = conn.execute(
                select(s.deliveries.c.event_id).where(
                    s.deliveries.c.sink == self.sink.name, s.deliveries.c.event_id.in_(event_ids)
                )
            )
            return {r.event_id for r in rows}

    def _deliver_with_retries(
        self, events: list[Event], outcomes: dict[str, tuple[str, Event | None, str]], stop: threading.Event
    ) -> None:
        error = self._attempt_all(events, stop)
        if error is None:
            for e in events:
                outcomes[e.event_id] = ("delivered", e, "")
            return
        if len(events) == 1:
            self._give_up(events[0], error, outcomes)
            return
        # the batch kept failing: find the events that fail alone, deliver the rest
        for event in events:
            single_error = self._attempt_all([event], stop)
            if single_error is None:
                outcomes[event.event_id] = ("delivered", event, "")
            else:
                self._give_up(event, single_error, outcomes)

    def _attempt_all(self, events: Sequence[Event], stop: threading.Event) -> tuple[BaseException, int] | None:
        """Try one delivery call until it succeeds or the policy gives up; return the last error."""
        attempt = 0
        while True:
            attempt += 1
            if self.limiter is not None:
                self.limiter.acquire(1, stop=stop)
            started = time.perf_counter()
            try:
                self._call_with_timeout(events)
            except Exception as exc:
                METRICS.delivery_seconds.labels(self.sink.name).observe(time.perf_counter() - started)
                retriable = not isinstance(exc, ExternalAPIError) or exc.retriable
                if not retriable or self.policy.exhausted(attempt) or stop.is_set():
                    return exc, attempt
                retry_after = exc.retry_after if isinstance(exc, ExternalAPIError) else None
                delay = self.policy.delay(attempt, retry_after)
                METRICS.retries.labels(self.sink.name).inc()
                log.warning(
                    "delivery failed; will retry",
                    sink=self.sink.name,
                    attempt=attempt,
                    events=len(events),
                    retry_in=round(delay, 2),
                    error=str(exc),
                    error_type=type(exc).__name__,
                )
                if stop.wait(delay):
                    return exc, attempt
                continue
            METRICS.delivery_seconds.labels(self.sink.name).observe(time.perf_counter() - started)
            age = (_now() - events[-1].occurred_at).total_seconds()
            METRICS.sink_lag.labels(self.sink.name).set(max(0.0, age))
            partition = str(self.bus.partition(events[-1].client_id))  # a batch is of one partition
            METRICS.partition_lag.labels(self.sink.name, partition).set(max(0.0, age))
            return None

    def _call_with_timeout(self, events: Sequence[Event]) -> None:
        """Run ``deliver`` with the timeout; a call still running after it counts as a failed attempt.

        Calls run on one reused thread. A late call is left to finish on its own (Python cannot stop a thread)
        and the next calls get a fresh thread; sinks are idempotent, so the late call's effect and the retry's
        effect are one.
        """
        if not self.timeout:
            self.sink.deliver(events)
            return
        if self._executor is None:
            self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"deliver:{self.sink.name}")
        future = self._executor.submit(self.sink.deliver, events)
        try:
            future.result(timeout=self.timeout)
        except FutureTimeout:
            self._executor.shutdown(wait=False)
            self._executor = None
            raise ExternalAPIError(
                f"delivery to {self.sink.name} took longer than {self.timeout:g} s", retriable=True
            ) from None

    def _give_up(
        self, event: Event, error: tuple[BaseException, int], outcomes: dict[str, tuple[str, Event | None, str]]
    ) -> None:
        exc, attempts = error
        if isinstance(exc, InterruptedError):
            raise exc
        text = dead_letter_error(exc, attempts)
        self._dead_letter(
            event.model_dump_json(),
            event,
            text,
            attempts,
            {
                "sink": self.sink.name,
                "event_type": event.type,
                "origin": str(event.origin),
                "partition": self.bus.partition(event.client_id),
                "traceback": "".join(traceback.format_exception(exc))[-4000:],
            },
        )
        outcomes[event.event_id] = ("dead", event, text)

    def _dead_letter(
        self, payload: str, event: Event | None, error: str, attempts: int, context: dict[str, Any]
    ) -> None:
        with self.store.write() as conn:
            record_dead_letter(
                conn,
                queue=self.sink.name,
                event_id=event.event_id if event else None,
                client_id=event.client_id if event else None,
                payload=payload,
                error=error,
                attempts=attempts,
                context=context,
            )
            if event is not None:
                # the outcome commits with the letter: a replay that follows at once (it deletes this row) is
                # never undone by a later record of "dead"
                conn.execute(
                    self._insert_outcome(conn),
                    [{"sink": self.sink.name, "event_id": event.event_id, "outcome": "dead", "at": _now()}],
                )
        METRICS.dead_letters.labels(self.sink.name).inc()
        log.error(
            "event dead-lettered",
            sink=self.sink.name,
            event_id=event.event_id if event else None,
            client_id=event.client_id if event else None,
            attempts=attempts,
            error=error[:500],
        )

    @staticmethod
    def _insert_outcome(conn: Any) -> Any:
        if conn.dialect.name == "postgresql":
            return postgresql.insert(s.deliveries).on_conflict_do_nothing()
        return sqlite.insert(s.deliveries).on_conflict_do_nothing()

    def _record(self, outcomes: dict[str, tuple[str, Event | None, str]]) -> None:
        if not outcomes:
            return
        now = _now()
        rows = [
            {"sink": self.sink.name, "event_id": eid, "outcome": o[0], "at": now}
            for eid, o in outcomes.items()
            if o[0] != "dead"  # recorded with its dead letter
        ]
        if rows:
            with self.store.write() as conn:
                # a row already there (a redelivery raced with the first delivery) is kept as it is
                conn.execute(self._insert_outcome(conn), rows)
        for outcome, _event, _why in outcomes.values():
            METRICS.deliveries.labels(self.sink.name, outcome).inc()
        self.delivered += sum(1 for o in outcomes.values() if o[0] == "delivered")
