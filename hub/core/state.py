"""Durable key-value state for plugins: cursors, OAuth tokens, account registrations.

Writes commit before ``put`` returns, so a rotated refresh token is stored before it is ever used.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import delete, insert, select, update

from hub.core import schema as s
from hub.core.store import Store


class StateStore:
    def __init__(self, store: Store) -> None:
        self.store = store

    def get(self, scope: str, key: str, default: Any = None) -> Any:
        with self.store.read() as conn:
            row = conn.execute(select(s.state.c.value).where(s.state.c.scope == scope, s.state.c.key == key)).first()
        return default if row is None else row.value

    def put(self, scope: str, key: str, value: Any) -> None:
        now = datetime.now(UTC)
        with self.store.write() as conn:
            found = conn.execute(
                select(s.state.c.key).where(s.state.c.scope == scope, s.state.c.key == key).with_for_update()
            ).first()
            if found is None:
                conn.execute(insert(s.state).values(scope=scope, key=key, value=value, updated_at=now))
            else:
                conn.execute(
                    update(s.state)
                    .where(s.state.c.scope == scope, s.state.c.key == key)
                    .values(value=value, updated_at=now)
                )

    def put_many(self, scope: str, values: dict[str, Any]) -> None:
        """:meth:`put` for many keys of one scope in one transaction (a sink's batch of writes)."""
        if not values:
            return
        now = datetime.now(UTC)
        with self.store.write() as conn:
            keys = list(values)
            found: set[str] = set()
            for start in range(0, len(keys), 500):
                chunk = keys[start : start + 500]
                rows = conn.execute(select(s.state.c.key).where(s.state.c.scope == scope, s.state.c.key.in_(chunk)))
                found.update(r.key for r in rows)
            fresh = [
                {"scope": scope, "key": k, "value": v, "updated_at": now} for k, v in values.items() if k not in found
            ]
            if fresh:
                conn.execute(insert(s.state), fresh)
            for key in found:
                conn.execute(
                    update(s.state)
                    .where(s.state.c.scope == scope, s.state.c.key == key)
                    .values(value=values[key], updated_at=now)
                )

    def claim(self, scope: str, key: str, value: Any) -> bool:
        """Store ``value`` only if ``key`` is free or already holds ``value``: one owner per key."""
        now = datetime.now(UTC)
        with self.store.write() as conn:
            row = conn.execute(
                select(s.state.c.value).where(s.state.c.scope == scope, s.state.c.key == key).with_for_update()
            ).first()
            if row is not None:
                return bool(row.value == value)
            conn.execute(insert(s.state).values(scope=scope, key=key, value=value, updated_at=now))
            return True

    def delete(self, scope: str, key: str) -> None:
        with self.store.write() as conn:
            conn.execute(delete(s.state).where(s.state.c.scope == scope, s.state.c.key == key))

    def items(self, scope: str) -> dict[str, Any]:
        with self.store.read() as conn:
            return {
                r.key: r.value
                for r in conn.execute(select(s.state.c.key, s.state.c.value).where(s.state.c.scope == scope))
            }
