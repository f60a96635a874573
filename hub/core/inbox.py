"""The durable inbox: webhook hints stored before the webhook is answered, handled later by a worker.

A plugin puts ``(kind, payload)``; a worker calls the plugin's handler; failures retry with backoff and end
in the dead-letter store. On PostgreSQL many workers share the inbox with ``FOR UPDATE SKIP LOCKED``.
"""

from __future__ import annotations

import json
import threading
import time
import traceback
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import structlog
from sqlalchemy import delete, func, insert, select, update
from sqlalchemy.exc import IntegrityError

from hub.core import schema as s
from hub.core.dlq import dead_letter_error, record_dead_letter
from hub.core.errors import ExternalAPIError
from hub.core.metrics import METRICS
from hub.core.retry import RetryPolicy
from hub.core.store import Store

log = structlog.get_logger("hub.inbox")
Handler = Callable[[dict[str, Any]], None]


def _now() -> datetime:
    return datetime.now(UTC)


class Inbox:
    def __init__(self, store: Store, policy: RetryPolicy, *, remember: timedelta = timedelta(hours=24)) -> None:
        self.store = store
        self.remember = remember  # how long a handled dedup key still refuses a repeat
        self.policy = policy
        self.handlers: dict[str, Handler] = {}
        self.wake = threading.Event()

    def put(self, kind: str, payload: dict[str, Any], *, dedup_key: str | None = None, delay: float = 0.0) -> bool:
        """Store an item durably; return False when an item with the same ``dedup_key`` is already there."""
        try:
            with self.store.write() as conn:
                conn.execute(
                    insert(s.inbox).values(
                        kind=kind,
                        payload=json.dumps(payload, ensure_ascii=False, default=str),
                        dedup_key=dedup_key,
                        attempts=0,
                        next_at=_now() + timedelta(seconds=delay),
                        created_at=_now(),
                    )
                )
        except IntegrityError:
            return False
        self.wake.set()
        return True

    def pending(self) -> int:
        with self.store.read() as conn:
            return int(
                conn.execute(select(func.count()).select_from(s.inbox).where(s.inbox.c.done_at.is_(None))).scalar() or 0
            )

    def process_once(self, limit: int = 50, *, lease: float = 300.0) -> int:
        """Handle up to ``limit`` due items of kinds this process has handlers for; return how many ran.

        An item is leased (pushed ``lease`` seconds into the future) in a short transaction before its handler
        runs outside any transaction; a crash mid-handler makes it due again when the lease ends.
        """
        if not self.handlers:
            return 0
        ran = 0
        for _ in range(limit):
            with self.store.write() as conn:
                query = (
                    select(s.inbox)
                    .where(
                        s.inbox.c.done_at.is_(None),
                        s.inbox.c.next_at <= _now(),
                        s.inbox.c.kind.in_(list(self.handlers)),
                    )
                    .order_by(s.inbox.c.next_at, s.inbox.c.id)
                    .limit(1)
                )
                if self.store.is_postgres:
                    query = query.with_for_update(skip_locked=True)
                found = conn.execute(query).mappings().first()
                if found is None:
                    return ran
                row = dict(found)
                conn.execute(
                    update(s.inbox)
                    .where(s.inbox.c.id == row["id"])
                    .values(attempts=row["attempts"] + 1, next_at=_now() + timedelta(seconds=lease))
                )
            ran += 1
            self._handle(row)
        return ran

    def _handle(self, row: dict[str, Any]) -> None:
        kind, attempts = row["kind"], row["attempts"] + 1
        try:
            self.handlers[kind](json.loads(row["payload"]))
        except Exception as exc:
            retriable = not isinstance(exc, ExternalAPIError) or exc.retriable
            with self.store.write() as conn:
                if retriable and not self.policy.exhausted(attempts):
                    retry_after = exc.retry_after if isinstance(exc, ExternalAPIError) else None
                    delay = self.policy.delay(attempts, retry_after)
                    conn.execute(
                        update(s.inbox)
                        .where(s.inbox.c.id == row["id"])
                        .values(next_at=_now() + timedelta(seconds=delay), error=str(exc)[:4000])
                    )
                    METRICS.retries.labels(f"inbox:{kind}").inc()
                    log.warning(
                        "inbox item failed; will retry",
                        kind=kind,
                        item=row["id"],
                        attempt=attempts,
                        retry_in=round(delay, 2),
                        error=str(exc),
                        error_type=type(exc).__name__,
                    )
                    return
                record_dead_letter(
                    conn,
                    queue=f"inbox:{kind}",
                    event_id=row["dedup_key"],
                    payload=row["payload"],
                    error=dead_letter_error(exc, attempts),
                    attempts=attempts,
                    context={"kind": kind, "traceback": "".join(traceback.format_exception(exc))[-4000:]},
                )
                conn.execute(delete(s.inbox).where(s.inbox.c.id == row["id"]))
            METRICS.dead_letters.labels(f"inbox:{kind}").inc()
            METRICS.inbox.labels(kind, "dead").inc()
            log.error("inbox item dead-lettered", kind=kind, item=row["id"], attempts=attempts, error=str(exc))
            return
        with self.store.write() as conn:
            if row["dedup_key"]:
                conn.execute(update(s.inbox).where(s.inbox.c.id == row["id"]).values(done_at=_now(), error=None))
            else:
                conn.execute(delete(s.inbox).where(s.inbox.c.id == row["id"]))
        METRICS.inbox.labels(kind, "done").inc()

    def forget_old(self) -> int:
        """Drop handled items older than ``remember``; their dedup keys accept a new hint again."""
        with self.store.write() as conn:
            result = conn.execute(delete(s.inbox).where(s.inbox.c.done_at < _now() - self.remember))
        return int(result.rowcount or 0)

    def run(self, stop: threading.Event, *, idle: float = 0.5) -> None:
        last_cleanup = 0.0
        while not stop.is_set():
            try:
                if time.monotonic() - last_cleanup > 600:
                    self.forget_old()
                    last_cleanup = time.monotonic()
                self.wake.clear()
                if self.process_once() == 0:
                    self.wake.wait(idle)
            except Exception as exc:
                log.error("inbox worker failed; retrying", error=str(exc), error_type=type(exc).__name__)
                stop.wait(1.0)
