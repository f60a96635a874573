"""The dead-letter store: what kept failing, with its full context, listed and replayed singly or in bulk.

At volume, letters are paged (by id, so a page stays stable while new letters arrive) and filtered by queue
(a sink or ``inbox:<kind>``), error kind (the exception's class name, ``ExternalAPIError``) and age; replay and
discard take the same filter. ``record_dead_letter`` is the one writer of the table.
"""

from __future__ import annotations

import builtins
import json
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Connection, delete, func, insert, select, update
from sqlalchemy.sql.elements import ColumnElement

from hub.core import schema as s
from hub.core.errors import NotFound
from hub.core.events import Event
from hub.core.store import Store


@dataclass
class DeadLetter:
    id: int
    queue: str
    event_id: str | None
    client_id: int | None
    error: str
    attempts: int
    status: str
    created_at: datetime
    payload: str
    context: dict[str, Any]
    replayed_at: datetime | None = None

    def summary(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "queue": self.queue,
            "event_id": self.event_id,
            "client_id": self.client_id,
            "attempts": self.attempts,
            "status": self.status,
            "created_at": self.created_at.isoformat(),
            "kind": self.kind,
            "error": self.error.splitlines()[0][:200] if self.error else "",
        }

    @property
    def kind(self) -> str:
        return error_kind(self.error)


_KIND = re.compile(r"^([A-Za-z_][A-Za-z0-9_.]*): ")
_WILL_RETRY = re.compile(r"[;,.]?\s*(?:will retry|retrying)\.?\s*$", re.I)


def error_kind(error: str) -> str:
    """The class of the error a letter died of (``ExternalAPIError``, ``FatalDelivery``), or ``other``."""
    found = _KIND.match(error or "")
    return found.group(1).rsplit(".", 1)[-1] if found else "other"


def dead_letter_error(exc: BaseException, attempts: int) -> str:
    """What a letter says it died of: the error without a "will retry" that was true only while it was
    retried, and how many attempts were made."""
    message = _WILL_RETRY.sub("", str(exc)).rstrip()
    tried = f"gave up after {attempts} attempt{'s' if attempts != 1 else ''}"
    return f"{type(exc).__name__}: {message} ({tried})"


def record_dead_letter(
    conn: Connection,
    *,
    queue: str,
    payload: str,
    error: str,
    attempts: int,
    context: dict[str, Any],
    event_id: str | None = None,
    client_id: int | None = None,
) -> None:
    """Store one dead letter in the caller's transaction (the one writer of the table)."""
    conn.execute(
        insert(s.dead_letters).values(
            queue=queue,
            event_id=event_id,
            client_id=client_id,
            payload=payload,
            error=error[:4000],
            attempts=attempts,
            context=context,
            status="open",
            created_at=datetime.now(UTC),
        )
    )


@dataclass(frozen=True)
class LetterFilter:
    """Which letters: ``queue`` (sink or ``inbox:<kind>``), error ``kind``, age bounds, ``status`` (None: any)."""

    queue: str | None = None
    kind: str | None = None
    older_than: timedelta | None = None
    newer_than: timedelta | None = None
    status: str | None = "open"

    def where(self) -> list[ColumnElement[bool]]:
        c = s.dead_letters.c
        now = datetime.now(UTC)
        found: list[ColumnElement[bool]] = []
        if self.queue:
            found.append(c.queue == self.queue)
        if self.status:
            found.append(c.status == self.status)
        if self.kind:
            if self.kind == "other":
                found.append(~c.error.regexp_match(r"^[A-Za-z_][A-Za-z0-9_.]*: "))
            else:
                escaped = self.kind.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
                found.append(c.error.like(f"{escaped}: %", escape="\\"))
        if self.older_than is not None:
            found.append(c.created_at <= now - self.older_than)
        if self.newer_than is not None:
            found.append(c.created_at >= now - self.newer_than)
        return found


class DeadLetters:
    def __init__(self, store: Store) -> None:
        self.store = store

    def list(
        self,
        *,
        queue: str | None = None,
        status: str | None = "open",
        limit: int = 100,
        after: int = 0,
        where: LetterFilter | None = None,
    ) -> list[DeadLetter]:
        """A page of letters in id order: the first ``limit`` with an id over ``after`` that match."""
        where = where or LetterFilter(queue=queue, status=status)
        query = select(s.dead_letters).where(s.dead_letters.c.id > after, *where.where())
        with self.store.read() as conn:
            rows = conn.execute(query.order_by(s.dead_letters.c.id).limit(limit)).mappings()
            return [DeadLetter(**dict(r)) for r in rows]

    def count(self, *, status: str = "open", where: LetterFilter | None = None) -> int:
        where = where or LetterFilter(status=status)
        with self.store.read() as conn:
            return int(
                conn.execute(select(func.count()).select_from(s.dead_letters).where(*where.where())).scalar() or 0
            )

    def kinds(self, where: LetterFilter | None = None) -> dict[str, int]:
        """How many letters of each error kind match (for a summary of what is failing)."""
        found: dict[str, int] = {}
        after = 0
        while True:
            page = self.list(where=where or LetterFilter(), after=after, limit=1000)
            for letter in page:
                found[letter.kind] = found.get(letter.kind, 0) + 1
            if len(page) < 1000:
                return found
            after = page[-1].id

    def get(self, letter_id: int) -> DeadLetter:
        with self.store.read() as conn:
            row = conn.execute(select(s.dead_letters).where(s.dead_letters.c.id == letter_id)).mappings().first()
        if row is None:
            raise NotFound(f"dead letter {letter_id} does not exist; see 'hub dlq list'")
        return DeadLetter(**dict(row))

    def replay(self, letter_id: int) -> DeadLetter:
        """Send one dead letter back to its queue; it is delivered again by the running workers."""
        now = datetime.now(UTC)
        with self.store.write() as conn:
            row = (
                conn.execute(select(s.dead_letters).where(s.dead_letters.c.id == letter_id).with_for_update())
                .mappings()
                .first()
            )
            if row is None:
                raise NotFound(f"dead letter {letter_id} does not exist; see 'hub dlq list'")
            if row["status"] != "open":
                return DeadLetter(**dict(row))
            queue = row["queue"]
            if queue.startswith("inbox:"):
                conn.execute(
                    insert(s.inbox).values(
                        kind=queue.removeprefix("inbox:"),
                        payload=row["payload"],
                        dedup_key=None,
                        attempts=0,
                        next_at=now,
                        created_at=now,
                    )
                )
            else:
                event = Event.model_validate_json(row["payload"])
                conn.execute(
                    delete(s.deliveries).where(s.deliveries.c.sink == queue, s.deliveries.c.event_id == event.event_id)
                )
                conn.execute(
                    insert(s.outbox).values(
                        event_id=event.event_id,
                        client_id=event.client_id,
                        type=event.type,
                        origin=event.origin.origin,
                        payload=row["payload"],
                        target_sink=queue,
                        created_at=now,
                        relayed=False,
                    )
                )
            conn.execute(
                update(s.dead_letters)
                .where(s.dead_letters.c.id == letter_id)
                .values(status="replayed", replayed_at=now)
            )
            result = dict(row) | {"status": "replayed", "replayed_at": now}
        return DeadLetter(**result)

    def replay_all(self, *, queue: str | None = None, where: LetterFilter | None = None) -> int:
        """Replay every open letter that matches; return how many."""
        where = where or LetterFilter(queue=queue)
        where = LetterFilter(where.queue, where.kind, where.older_than, where.newer_than, "open")
        count = 0
        after = 0
        while True:
            batch = self.list(where=where, after=after, limit=500)
            if not batch:
                return count
            for letter in batch:
                self.replay(letter.id)
                count += 1
            after = batch[-1].id

    def discard(self, letter_ids: builtins.list[int] | None = None, *, where: LetterFilter | None = None) -> int:
        """Mark open letters discarded (kept for the record, never replayed); by id or by filter."""
        c = s.dead_letters.c
        query = update(s.dead_letters).where(c.status == "open").values(status="discarded")
        if letter_ids is not None:
            query = query.where(c.id.in_(letter_ids))
        else:
            where = where or LetterFilter()
            query = query.where(*LetterFilter(where.queue, where.kind, where.older_than, where.newer_than).where())
        with self.store.write() as conn:
            return int(conn.execute(query).rowcount or 0)

    @staticmethod
    def payload_json(letter: DeadLetter) -> Any:
        try:
            return json.loads(letter.payload)
        except ValueError:
            return letter.payload
