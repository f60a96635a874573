"""Running the hub as a daemon: the web server and the background roles, and a clean drain on SIGTERM."""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator
from typing import Any

import structlog

from hub.core.hub import Hub

log = structlog.get_logger("hub.daemon")


def run(hub: Hub, *, role: str = "all", host: str | None = None, port: int | None = None) -> None:
    """Start ``role`` and block until SIGTERM/SIGINT; then drain in-flight work and return."""
    host = host or hub.settings.http.host
    port = port or hub.settings.http.port
    if role in ("all", "web"):
        from hub.web.security import check_listen_address

        check_listen_address(hub.settings.http, host)  # before anything starts: no open hub beyond loopback
    hub.start(role)
    try:
        if role in ("all", "web"):
            _serve_web(hub, host, port)
        else:
            _wait_for_signal()
    finally:
        hub.stop()


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
