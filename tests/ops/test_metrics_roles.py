"""Metrics for every role: a worker's relay, delivery, lag and retry figures are scrapeable on its probe port,
the web role does not show worker counters stuck at 0, and a worker whose broker is gone says so."""

from __future__ import annotations

import re
import socket
import threading
from contextlib import suppress

import httpx
import pytest

from hub.core.events import ClientObservation, SourceRef
from hub.testing import free_port
from tests.conftest import wait_for
from tests.core.effect_sink import open_effects
from tests.ops.daemon import Daemon, hub_env

pytestmark = pytest.mark.postgres


def sample(text: str, name: str, **labels: str) -> float | None:
    """The value of one sample in Prometheus text, or None when the process does not show it."""
    want = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))  # the exposition sorts labels
    pattern = rf"^{re.escape(name)}(?:\{{{re.escape(want)}\}})? ([0-9.e+-]+)$" if want else rf"^{name} ([0-9.e+-]+)$"
    found = re.search(pattern, text, re.M)
    return float(found.group(1)) if found else None


def worker_env(production, tmp_path, **extra):
    return hub_env(
        production,
        HUB_PLUGIN_MODULES="tests.core.effect_sink",
        HUB_TEST_EFFECTS_DB=str(tmp_path / "effects.db"),
        HUB_PARTITIONS="4",
        **extra,
    )


def ingest(hub, n: int) -> None:
    for i in range(n):
        hub.ingest(
            ClientObservation(source=SourceRef(system="excel", entity="row", id=str(i)), phones=[f"+7916000{i:04d}"])
        )


def test_a_worker_serves_its_metrics_and_the_web_role_hides_worker_counters(production, tmp_path):
    hub = production.hub(partitions=4)
    metrics_port, web_port, listener_port = free_port(), free_port(), free_port()
    env = worker_env(production, tmp_path)
    worker = Daemon(env, tmp_path / "worker.log", "--role", "worker", "--metrics-port", str(metrics_port))
    web = Daemon(env, tmp_path / "web.log", "--role", "web", "--port", str(web_port))
    listener = Daemon(env, tmp_path / "listener.log", "--role", "listener", "--metrics-port", str(listener_port))
    try:
        wait_for(lambda: _get(f"http://127.0.0.1:{metrics_port}/healthz"), timeout=60)
        ingest(hub, 20)
        effects = open_effects(str(tmp_path / "effects.db"))
        wait_for(lambda: effects.execute("SELECT count(*) FROM effects").fetchone()[0] == 20, timeout=60)

        def scrape() -> str:
            return _get(f"http://127.0.0.1:{metrics_port}/metrics").text

        # the outcome is recorded (and counted) right after the effect
        wait_for(lambda: sample(scrape(), "hub_deliveries_total", sink="effects", outcome="delivered") == 20)
        scraped = scrape()
        assert sample(scraped, "hub_events_relayed_total") == 20
        lags = re.findall(r'^hub_sink_partition_lag_seconds\{partition="(\d)",sink="effects"\}', scraped, re.M)
        assert sorted(set(lags)) == ["0", "1", "2", "3"]  # lag per partition of the sink
        assert sample(scraped, "hub_sink_queue_depth", sink="effects", partition="0") == 0
        assert sample(scraped, "hub_outbox_pending") == 0
        ready = _get(f"http://127.0.0.1:{metrics_port}/readyz")
        assert ready.status_code == 200 and ready.json()["role"] == "worker"

        wait_for(lambda: _get(f"http://127.0.0.1:{web_port}/healthz"), timeout=60)
        web_metrics = _get(f"http://127.0.0.1:{web_port}/metrics").text
        assert "hub_events_relayed_total" not in web_metrics and "hub_deliveries_total" not in web_metrics
        assert sample(web_metrics, "hub_outbox_pending") == 0  # whole-hub figures hold everywhere
        assert sample(web_metrics, "hub_sink_queue_depth", sink="effects", partition="3") == 0

        wait_for(lambda: _get(f"http://127.0.0.1:{listener_port}/healthz"), timeout=60)
        listener_metrics = _get(f"http://127.0.0.1:{listener_port}/metrics").text
        assert "# TYPE hub_api_calls_total counter" in listener_metrics  # a listener's own figures
        assert "hub_events_relayed_total" not in listener_metrics
        assert _get(f"http://127.0.0.1:{listener_port}/readyz").json()["role"] == "listener"
    finally:
        assert worker.stop() == 0
        assert web.stop() == 0
        assert listener.stop() == 0


def _get(url: str) -> httpx.Response | None:
    try:
        return httpx.get(url, timeout=5)
    except httpx.HTTPError:
        return None


class Proxy:
    """A TCP forwarder to RabbitMQ that can be cut, so a broker 'goes away' without stopping the shared one."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.sockets: list[socket.socket] = []
        self.closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self.closed:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(self.target)
            self.sockets += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(src: socket.socket, dst: socket.socket) -> None:
        with suppress(OSError):
            while data := src.recv(65536):
                dst.sendall(data)
        with suppress(OSError):
            dst.shutdown(socket.SHUT_RDWR)

    def cut(self) -> None:
        self.closed = True
        self.listener.close()
        for sock in self.sockets:
            with suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
                sock.close()


def test_a_worker_whose_broker_is_gone_logs_it_and_is_not_ready(production, tmp_path):
    production.hub(partitions=4)
    proxy = Proxy(("127.0.0.1", 5672))
    metrics_port = free_port()
    env = worker_env(production, tmp_path, HUB_BUS_URL=f"amqp://guest:guest@127.0.0.1:{proxy.port}//")
    worker = Daemon(env, tmp_path / "worker.log", "--role", "worker", "--metrics-port", str(metrics_port))
    try:
        wait_for(lambda: _get(f"http://127.0.0.1:{metrics_port}/readyz"), timeout=60)
        assert _get(f"http://127.0.0.1:{metrics_port}/readyz").status_code == 200
        proxy.cut()
        wait_for(lambda: "sink consumer failed; reconnecting" in worker.log(), timeout=30)
        wait_for(lambda: "relay failed; retrying" in worker.log(), timeout=30)
        answer = wait_for(lambda: (r := _get(f"http://127.0.0.1:{metrics_port}/readyz")) and r.status_code == 503 and r)
        assert f"cannot reach the bus at amqp://127.0.0.1:{proxy.port}" in answer.json()["checks"]["bus"]
    finally:
        proxy.cut()
        worker.stop()
