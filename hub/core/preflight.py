"""Checks before the hub starts work: the database, the data directory, the bus and the ports answer.

Each failure is one ``StartupError`` line that names what was tried (scheme, host and port; never a
password) and what to do, so ``hub run`` exits non-zero with that line instead of a traceback.
"""

from __future__ import annotations

import errno
import os
import socket
import tempfile
from pathlib import Path
from urllib.parse import urlsplit

from sqlalchemy.engine import make_url

from hub.core.errors import HubError

DEFAULT_PORTS = {"postgresql": 5432, "amqp": 5672, "amqps": 5671, "pyamqp": 5672, "redis": 6379, "rediss": 6379}


class StartupError(HubError):
    """The hub cannot start: the message says what it tried and what to change."""


def where(url: str) -> str:
    """``scheme://host:port/path`` of a database or bus URL: enough to find it, nothing secret."""
    if url.split("://", 1)[0].split("+")[0] in ("sqlite", "postgresql", "postgres"):
        try:
            parsed = make_url(url)
        except Exception:  # unreadable: fall back to the plain reading below
            pass
        else:
            scheme = parsed.get_backend_name()
            if scheme == "sqlite":
                return f"sqlite:///{parsed.database or ''}"
            port = parsed.port or DEFAULT_PORTS.get(scheme)
            return f"{scheme}://{parsed.host or 'localhost'}:{port}/{parsed.database or ''}"
    parts = urlsplit(url)
    scheme = parts.scheme or "?"
    try:
        port = parts.port or DEFAULT_PORTS.get(scheme)
    except ValueError:
        port = None
    host = parts.hostname or ("" if scheme == "memory" else "localhost")
    return f"{scheme}://{host}:{port}" if port else f"{scheme}://{host}"


def _reason(exc: BaseException) -> str:
    """The root cause in a few words (``Connection refused``), without the URL a driver may repeat."""
    cause: BaseException = exc
    while cause.__cause__ is not None or cause.__context__ is not None:
        nxt = cause.__cause__ or cause.__context__
        assert nxt is not None
        cause = nxt
    text = str(getattr(cause, "strerror", None) or cause).strip().splitlines()
    first = text[0] if text else type(cause).__name__
    return first[:200]


def check_database(url: str, *, is_sqlite: bool) -> None:
    """The database answers and takes writes (a read-only SQLite file or a read-only PostgreSQL is refused)."""
    from sqlalchemy import create_engine, text

    target = where(url)
    if is_sqlite:
        database = make_url(url).database
        if database and database != ":memory:" and not database.startswith("file:"):
            check_directory(Path(database).parent, "the data directory (HUB_DATA_DIR)")
    engine = create_engine(url, connect_args={} if is_sqlite else {"connect_timeout": 5})
    try:
        with engine.connect() as conn:
            if is_sqlite:
                # a write that is rolled back: rewriting the header's user_version fails on a read-only file
                conn.exec_driver_sql("BEGIN IMMEDIATE")
                version = conn.exec_driver_sql("PRAGMA user_version").scalar()
                conn.exec_driver_sql(f"PRAGMA user_version = {int(version or 0)}")
                conn.exec_driver_sql("ROLLBACK")
            else:
                read_only = conn.execute(text("SELECT current_setting('transaction_read_only')")).scalar()
                if read_only == "on":
                    raise StartupError(
                        f"the database at {target} refuses writes (read-only transaction or standby); "
                        "point HUB_DATABASE_URL at the primary"
                    )
    except StartupError:
        raise
    except Exception as exc:
        raise StartupError(
            f"cannot use the database at {target}: {_reason(exc)}; check HUB_DATABASE_URL and that it is running"
        ) from None
    finally:
        engine.dispose()


def check_directory(path: Path, what: str) -> None:
    """``path`` exists (made if missing) and a file can be written in it."""
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path, prefix=".hub-write-check-"):
            pass
    except OSError as exc:
        reason = "read-only file system" if exc.errno == errno.EROFS else (exc.strerror or str(exc))
        raise StartupError(f"{what} {path} is not writable: {reason}; fix its permissions or choose another") from None


def check_bus(url: str, *, timeout: float = 5.0) -> None:
    """The kombu transport exists and, for a broker, a connection opens."""
    from kombu import Connection

    target = where(url)
    try:
        conn = Connection(url, connect_timeout=timeout)
        conn.transport  # noqa: B018 - resolves the transport: an unknown scheme fails here
    except Exception as exc:
        problem = _transport_problem(exc)
        raise StartupError(f"bad bus URL {target}: {problem}; use amqp://host:5672// or memory://") from None
    try:
        conn.ensure_connection(max_retries=1, timeout=timeout)
    except Exception as exc:
        raise StartupError(
            f"cannot reach the bus at {target}: {_reason(exc)}; check HUB_BUS_URL and that the broker is running"
        ) from None
    finally:
        conn.release()


def _transport_problem(exc: BaseException) -> str:
    if isinstance(exc, KeyError) and exc.args:  # kombu: "No such transport: rabbit.  Did you mean ...?"
        return " ".join(str(exc.args[0]).split())
    return _reason(exc)


def check_port(host: str, port: int, what: str) -> None:
    """Nothing else listens on ``host:port`` (checked before any worker starts, so nothing half-starts)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        if os.name == "posix":
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn does: TIME_WAIT is no conflict
        try:
            sock.bind((host, port))
        except OSError as exc:
            reason = "already in use" if exc.errno == errno.EADDRINUSE else (exc.strerror or str(exc))
            raise StartupError(f"cannot listen on {host}:{port} ({what}): {reason}; choose another port") from None
