"""A plugin for crash tests: a sink whose effects land in its own SQLite file, idempotently, like a real CRM.

Loaded into a ``hub run`` subprocess with ``HUB_PLUGIN_MODULES=tests.core.effect_sink`` and
``HUB_TEST_EFFECTS_DB=<file>``. Every call is counted; every event takes effect once (INSERT OR IGNORE).
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Sequence
from typing import Any

from hub import hookimpl
from hub.core.events import Event
from hub.core.sinks import Sink


def open_effects(path: str) -> sqlite3.Connection:
    conn = sqlite3.connect(path, timeout=30, isolation_level=None, check_same_thread=False)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("CREATE TABLE IF NOT EXISTS effects (event_id TEXT PRIMARY KEY, client_id INT, type TEXT)")
    conn.execute("CREATE TABLE IF NOT EXISTS attempts (event_id TEXT)")
    return conn


class EffectSink(Sink):
    max_batch = 50

    def __init__(self, path: str) -> None:
        self.name, self.system, self.path = "effects", "effects", path
        self.conn = open_effects(path)

    def deliver(self, events: Sequence[Event]) -> None:
        self.conn.execute("BEGIN")
        self.conn.executemany("INSERT INTO attempts VALUES (?)", [(e.event_id,) for e in events])
        self.conn.executemany(
            "INSERT OR IGNORE INTO effects VALUES (?, ?, ?)", [(e.event_id, e.client_id, e.type) for e in events]
        )
        self.conn.execute("COMMIT")


@hookimpl
def hub_register_sinks(hub: Any, register: Any) -> None:
    path = os.environ.get("HUB_TEST_EFFECTS_DB")
    if path:
        register(EffectSink(path))
