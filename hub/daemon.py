"""Running the hub as a daemon: the web server and the background roles, and a clean drain on SIGTERM."""

from __future__ import annotations

import signal
import threading
from typing import Any

import structlog

from hub.core.hub import Hub

log = structlog.get_logger("hub.daemon")


def run(hub: Hub, *, role: str = "all", host: str | None = None, port: int | None = None) -> None:
    """Start ``role`` and block until SIGTERM/SIGINT; then drain in-flight work and return."""
    host = host or hub.settings.http.host
    port = port or hub.settings.http.port
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

    config = uvicorn.Config(
        create_app(hub),
        host=host,
        port=port,
        log_config=None,
        access_log=True,
        timeout_graceful_shutdown=int(hub.settings.shutdown_grace),
        server_header=False,
    )
    server = uvicorn.Server(config)
    log.info("serving HTTP", url=f"http://{host}:{port}", docs=f"http://{host}:{port}/docs")
    server.run()  # uvicorn handles SIGTERM/SIGINT: stops accepting, finishes requests in flight


def _wait_for_signal() -> None:
    stop = threading.Event()

    def _handler(signum: int, _frame: Any) -> None:
        log.info("signal received; draining", signal=signal.Signals(signum).name)
        stop.set()

    signal.signal(signal.SIGTERM, _handler)
    signal.signal(signal.SIGINT, _handler)
    while not stop.wait(1.0):
        pass
