"""The dead-letter store: what kept failing, with its full context, listed and replayed singly or in bulk."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import delete, func, insert, select, update

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
            "error": self.error.splitlines()[0][:200] if self.error else "",
        }


class DeadLetters:
    def __init__(self, store: Store) -> None:
        self.store = store

    def list(self, *, queue: str | None = None, status: str | None = "open", limit: int = 100) -> list[DeadLetter]:
        query = select(s.dead_letters).order_by(s.dead_letters.c.id).limit(limit)
        if queue:
            query = query.where(s.dead_letters.c.queue == queue)
        if status:
            query = query.where(s.dead_letters.c.status == status)
        with self.store.read() as conn:
            return [DeadLetter(**dict(r)) for r in conn.execute(query).mappings()]

    def count(self, *, status: str = "open") -> int:
        with self.store.read() as conn:
            return int(
                conn.execute(
                    select(func.count()).select_from(s.dead_letters).where(s.dead_letters.c.status == status)
                ).scalar()
                or 0
            )

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

    def replay_all(self, *, queue: str | None = None) -> int:
        count = 0
        while True:
            batch = self.list(queue=queue, status="open", limit=500)
            if not batch:
                return count
            for letter in batch:
                self.replay(letter.id)
                count += 1

    @staticmethod
    def payload_json(letter: DeadLetter) -> Any:
        try:
            return json.loads(letter.payload)
        except ValueError:
            return letter.payload
