"""Running the hub as a daemon: checks before start, the web server and the background roles, the probe port
of the other roles, the catch-up log, and a clean drain on SIGTERM."""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator
from typing import Any

import structlog

from hub.core.catchup import CatchUp
from hub.core.errors import HubError
from hub.core.hub import ROLES, Hub
from hub.core.preflight import StartupError, check_bus, check_database, check_port
from hub.core.readiness import Readiness

log = structlog.get_logger("hub.daemon")


def run(
    hub: Hub,
    *,
    role: str = "all",
    host: str | None = None,
    port: int | None = None,
    metrics_port: int | None = None,
) -> None:
    """Check, start ``role`` and block until SIGTERM/SIGINT; then drain in-flight work and return.

    Raises ``StartupError`` (one line, no traceback) when the database, the data directory, the bus or a
    port is not usable; nothing has started then.
    """
    host = host or hub.settings.http.host
    port = port or hub.settings.http.port
    if role in ("all", "web"):
        from hub.web.security import check_listen_address

        check_listen_address(hub.settings.http, host)  # before anything starts: no open hub beyond loopback
    probe_port = hub.settings.metrics.port if metrics_port is None else metrics_port
    preflight(hub, role, host, port, probe_port)
    try:
        hub.start(role)
    except HubError:
        raise
    except Exception as exc:
        log.error("start failed", error=str(exc), error_type=type(exc).__name__, exc_info=True)
        raise StartupError(f"the hub failed to start: {type(exc).__name__}: {exc}".splitlines()[0][:300]) from None
    readiness = Readiness(hub, relay_stuck_after=hub.settings.relay_stuck_after)
    probe = None
    catch_up = None
    try:
        if role in ("all", "worker"):
            catch_up = CatchUp(hub)
            catch_up.start()
        if role in ("all", "web"):
            _serve_web(hub, host, port)
        else:
            if probe_port:
                from hub.probe import ProbeServer

                probe = ProbeServer(hub, readiness, hub.settings.metrics.host, probe_port)
                probe.start()
            _wait_for_signal()
    finally:
        if catch_up is not None:
            catch_up.stop()
        if probe is not None:
            probe.close()
        hub.stop()


def preflight(hub: Hub, role: str, host: str, port: int, probe_port: int) -> None:
    """Everything ``run`` needs, checked before anything starts; the first problem is a ``StartupError``."""
    if role not in ROLES:
        raise StartupError(f"unknown role {role!r}; use one of {', '.join(ROLES)}")
    check_database(hub.store.url, is_sqlite=not hub.store.is_postgres)
    if hub.bus.durable:
        check_bus(hub.bus.url)
    if role in ("all", "web"):
        check_port(host, port, "HTTP, HUB_HTTP__PORT or --port")
    elif probe_port:
        check_port(hub.settings.metrics.host, probe_port, "metrics, HUB_METRICS__PORT or --metrics-port")


def _serve_web(hub: Hub, host: str, port: int) -> None:
    import uvicorn

    from hub.web.app import create_app

    class _Server(uvicorn.Server):
        @contextlib.contextmanager
        def capture_signals(self) -> Iterator[None]:
            # The daemon owns the signals: uvicorn would re-raise SIGTERM after its shutdown and kill the process
            # before the workers drain.
            yield

    config = uvicorn.Config(
        create_app(hub),
        host=host,
        port=port,
        log_config=None,
        access_log=True,
        timeout_graceful_shutdown=int(hub.settings.shutdown_grace),
        server_header=False,
    )
    server = _Server(config)

    def _handler(signum: int, _frame: Any) -> None:
        log.info("signal received; draining", signal=signal.Signals(signum).name)
        if server.should_exit:
            server.force_exit = True
        server.should_exit = True

    signal.signal(signal.SIGTERM, _handler)
    signal.signal(signal.SIGINT, _handler)
    log.info("serving HTTP", url=f"http://{host}:{port}", docs=f"http://{host}:{port}/docs")
    server.run()  # stops accepting on the signal and finishes the requests in flight


def _wait_for_signal() -> None:
    stop = threading.Event()

    def _handler(signum: int, _frame: Any) -> None:
        log.info("signal received; draining", signal=signal.Signals(signum).name)
        stop.set()

    signal.signal(signal.SIGTERM, _handler)
    signal.signal(signal.SIGINT, _handler)
    while not stop.wait(1.0):
        pass
