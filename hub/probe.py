"""The probe port of the worker and listener roles: ``/metrics``, ``/healthz`` and ``/readyz`` of that process.

The web role serves these on its HTTP port; the other roles have no HTTP server, so each process opens this
small one (``HUB_METRICS__PORT``, ``hub run --metrics-port``) for Prometheus and for orchestrator probes.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterable
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, make_server

import structlog
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from hub.core.backlog import refresh_gauges
from hub.core.hub import Hub
from hub.core.metrics import METRICS
from hub.core.readiness import Readiness

log = structlog.get_logger("hub.probe")
StartResponse = Callable[..., Any]


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:  # scrapes every few seconds are not news
        pass


def probe_app(hub: Hub, readiness: Readiness) -> Callable[[dict[str, Any], StartResponse], Iterable[bytes]]:
    def app(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "/")
        if path == "/metrics":
            refresh_gauges(hub)
            body = generate_latest(METRICS.for_role(hub.role))
            start_response("200 OK", [("Content-Type", CONTENT_TYPE_LATEST)])
            return [body]
        if path == "/healthz":
            return _json(start_response, 200, {"status": "ok", "role": hub.role})
        if path == "/readyz":
            report = readiness.report()
            return _json(start_response, 200 if report["ready"] else 503, {"role": hub.role, **report})
        return _json(start_response, 404, {"error": "not_found", "detail": "use /metrics, /healthz or /readyz"})

    return app


def _json(start_response: StartResponse, status: int, data: Any) -> list[bytes]:
    body = json.dumps(data, ensure_ascii=False, default=str).encode()
    reason = {200: "OK", 404: "Not Found", 503: "Service Unavailable"}[status]
    start_response(f"{status} {reason}", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
    return [body]


class ProbeServer:
    """Serves the probe app in a daemon thread until ``close``."""

    def __init__(self, hub: Hub, readiness: Readiness, host: str, port: int) -> None:
        from socketserver import ThreadingMixIn
        from wsgiref.simple_server import WSGIServer

        class _Server(ThreadingMixIn, WSGIServer):
            daemon_threads = True

        app = probe_app(hub, readiness)
        self.server = make_server(host, port, app, server_class=_Server, handler_class=_QuietHandler)
        self.thread = threading.Thread(target=self.server.serve_forever, name="probe", daemon=True)
        self.host = host
        self.url = f"http://{host}:{port}"

    def start(self) -> None:
        self.thread.start()
        log.info("serving metrics and probes", url=f"{self.url}/metrics")
        if self.host not in ("127.0.0.1", "::1", "localhost"):
            # no client data here, but account names and sink figures: keep it on a private network
            log.warning("the metrics port listens beyond loopback without authentication", host=self.host)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
