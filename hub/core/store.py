"""The database: engine setup for SQLite (embedded) and PostgreSQL, transactions, and schema migrations."""

from __future__ import annotations

import json
import threading
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.engine import make_url

from hub.core.errors import ConfigError


def _json_dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, default=str, separators=(",", ":"))


class FifoLock:
    """A lock granted in the order it was asked for (``threading.Lock`` lets a releasing thread barge back in)."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._queue: deque[object] = deque()
        self._held = False

    def __enter__(self) -> None:
        ticket = object()
        with self._cond:
            self._queue.append(ticket)
            while self._held or self._queue[0] is not ticket:
                self._cond.wait()
            self._queue.popleft()
            self._held = True

    def __exit__(self, *exc: object) -> None:
        with self._cond:
            self._held = False
            self._cond.notify_all()


class Store:
    """Owns the engine. ``write()`` opens a write transaction, ``read()`` a read-only one.

    On SQLite a write transaction starts with ``BEGIN IMMEDIATE`` so concurrent writers queue on the lock
    instead of failing on upgrade, WAL lets readers go on meanwhile, and ``synchronous=NORMAL`` keeps every
    committed transaction across a process crash (kill -9).
    """

    def __init__(self, url: str, *, echo: bool = False) -> None:
        self.url = url
        parsed = make_url(url)
        self.dialect = parsed.get_backend_name()
        if self.dialect == "sqlite":
            db = parsed.database
            if db and db != ":memory:" and not db.startswith("file:"):
                try:
                    Path(db).parent.mkdir(parents=True, exist_ok=True)
                except OSError as exc:
                    raise ConfigError(f"cannot create the data directory {Path(db).parent}: {exc.strerror}") from None
            self.engine: Engine = create_engine(
                url,
                echo=echo,
                json_serializer=_json_dumps,
                hide_parameters=True,  # a database error must never carry names and phones into a log line
                connect_args={"check_same_thread": False, "timeout": 60},
            )
            self._setup_sqlite(self.engine)
            self._turns: FifoLock | None = FifoLock()
        elif self.dialect == "postgresql":
            self._turns = None
            # No server-side prepared statements: a plan cached while a table was nearly empty (a sequential
            # scan) would be reused after it grew to millions of rows. Planning these small queries costs less.
            self.engine = create_engine(
                url,
                echo=echo,
                json_serializer=_json_dumps,
                hide_parameters=True,  # a database error must never carry names and phones into a log line
                pool_size=10,
                max_overflow=20,
                pool_pre_ping=True,
                connect_args={"prepare_threshold": None},
            )
        else:
            raise ConfigError(f"unsupported database {self.dialect!r}: use sqlite:/// or postgresql+psycopg://")

    @staticmethod
    def _setup_sqlite(engine: Engine) -> None:
        @event.listens_for(engine, "connect")
        def _connect(dbapi_conn: Any, _record: Any) -> None:
            dbapi_conn.isolation_level = None  # we issue BEGIN ourselves
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA busy_timeout=60000")
            cur.execute(
                "PRAGMA cache_size=-4096"
            )  # 4 MB a connection (several in the pool); the OS caches the file too
            cur.close()

        @event.listens_for(engine, "begin")
        def _begin(conn: Connection) -> None:
            write = conn.get_execution_options().get("hub_write", False)
            conn.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")

    @property
    def is_postgres(self) -> bool:
        return self.dialect == "postgresql"

    @contextmanager
    def write(self) -> Iterator[Connection]:
        if self._turns is None:
            with self.engine.connect().execution_options(hub_write=True) as conn, conn.begin():
                yield conn
            return
        # SQLite has one writer at a time, and a busy writer retries by sleeping: a thread writing back to back
        # (a bulk import) would starve the sink workers and the relay. Writers of this process take turns.
        with self._turns, self.engine.connect().execution_options(hub_write=True) as conn, conn.begin():
            yield conn

    @contextmanager
    def read(self) -> Iterator[Connection]:
        with self.engine.connect() as conn, conn.begin():
            yield conn

    def ping(self) -> bool:
        try:
            with self.engine.connect() as conn:
                conn.exec_driver_sql("SELECT 1")
            return True
        except Exception:
            return False

    def dispose(self) -> None:
        self.engine.dispose()


def alembic_config(url: str) -> Any:
    from alembic.config import Config

    here = Path(__file__).parent / "migrations"
    cfg = Config()
    cfg.set_main_option("script_location", str(here))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


def upgrade(store: Store, revision: str = "head") -> None:
    """Bring the schema to ``revision`` with alembic (safe to run on every start)."""
    from alembic import command

    cfg = alembic_config(store.url)
    with store.engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, revision)


def current_revision(store: Store) -> str | None:
    from alembic.runtime.migration import MigrationContext

    with store.engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()
