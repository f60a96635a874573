"""Nothing lost, nothing doubled: kill -9 of the daemon mid-stream, and a broker restart under load."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest
from sqlalchemy import func, select

from hub.core import schema as s
from hub.testing import free_port
from tests.conftest import wait_for
from tests.core.effect_sink import open_effects

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow

N = 10_000
PHONES = 2_000


def observation(i: int) -> dict:
    return {
        "kind": "interaction",
        "channel": "call",
        "direction": "in",
        "status": "answered",
        "source": {"system": "pbx", "entity": "call", "id": f"call-{i}"},
        "duration_s": i % 600,
        "client": {"phones": [f"+7916{i % PHONES:07d}"], "name": f"Абонент {i % PHONES}"},
    }


class Daemon:
    def __init__(self, backend, tmp_path: Path) -> None:
        self.port = free_port()
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("HUB_")}
        self.env.update(backend.env())
        self.env.update(
            {
                "PYTHONPATH": str(ROOT),
                "HUB_PLUGIN_MODULES": "tests.core.effect_sink",
                "HUB_DISABLE_PLUGIN_AUTOLOAD": "1",
                "HUB_TEST_EFFECTS_DB": str(tmp_path / "effects.db"),
                "HUB_LOG_LEVEL": "warning",
                "HUB_LOG_FORMAT": "json",
            }
        )
        self.log = open(tmp_path / "daemon.log", "a")  # noqa: SIM115
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "hub.cli", "run", "--port", str(self.port)],
            env=self.env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )

    def kill9(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        self.log.close()


def stream(base: str, sent: list[int], failures: list[str], batch: int = 25) -> None:
    """Post every observation until the hub answered 2xx for it, retrying through outages like a real client."""
    with httpx.Client(timeout=30) as client:
        for start in range(0, N, batch):
            chunk = [observation(i) for i in range(start, min(start + batch, N))]
            while True:
                try:
                    r = client.post(f"{base}/api/observations", json=chunk)
                    if r.status_code == 200 and r.json()["rejected"] == 0:
                        break
                    failures.append(f"{start}: {r.status_code} {r.text[:200]}")
                    return
                except httpx.HTTPError:
                    time.sleep(0.05)
            sent.extend(range(start, start + len(chunk)))


def check_exactly_once(hub, effects_path: Path) -> None:
    with hub.store.read() as conn:
        items = conn.execute(select(func.count()).select_from(s.items)).scalar()
        distinct_sources = conn.execute(
            select(func.count(func.distinct(s.refs.c.ext_id))).where(s.refs.c.target == "item")
        ).scalar()
        clients = conn.execute(select(func.count()).select_from(s.clients)).scalar()
        event_ids = {r.event_id for r in conn.execute(select(s.outbox.c.event_id))}
        per_sink = conn.execute(select(func.count()).select_from(s.deliveries)).scalar()
    assert items == N and distinct_sources == N, "every observation applied exactly once"
    assert clients == PHONES, "no duplicate client after the crash"
    assert len(event_ids) == N + PHONES
    effects = open_effects(str(effects_path))
    done = {r[0] for r in effects.execute("SELECT event_id FROM effects")}
    assert done == event_ids, f"{len(event_ids - done)} events never delivered"
    assert per_sink == len(event_ids), "each event recorded once for the sink"
    attempts = effects.execute("SELECT count(*) FROM attempts").fetchone()[0]
    print(f"{len(event_ids)} events, {attempts} delivery attempts ({attempts - len(event_ids)} redelivered)")


def wait_delivered(hub, effects_path: Path, timeout: float = 300) -> None:
    effects = open_effects(str(effects_path))

    def all_there() -> bool:
        with hub.store.read() as conn:
            total = conn.execute(select(func.count()).select_from(s.outbox)).scalar()
        return total == N + PHONES and effects.execute("SELECT count(*) FROM effects").fetchone()[0] == total

    wait_for(all_there, timeout=timeout, interval=0.5)


def test_kill_9_mid_stream_then_restart_applies_and_delivers_everything_once(backend, tmp_path):
    hub = backend.hub()  # migrates the schema, and reads the results below
    daemon = Daemon(backend, tmp_path)
    daemon.start()
    base = f"http://127.0.0.1:{daemon.port}"
    sent: list[int] = []
    failures: list[str] = []
    poster = threading.Thread(target=stream, args=(base, sent, failures))
    poster.start()
    try:
        wait_for(lambda: len(sent) >= 3_000, timeout=300, interval=0.05)
        daemon.kill9()
        time.sleep(1.0)
        daemon.start()
        poster.join(timeout=600)
        assert not failures, failures[:3]
        assert len(sent) == N
        wait_delivered(hub, tmp_path / "effects.db")
        check_exactly_once(hub, tmp_path / "effects.db")
    finally:
        daemon.stop()


def test_rabbitmq_restart_under_load_loses_nothing(production, tmp_path):
    hub = production.hub()
    daemon = Daemon(production, tmp_path)
    daemon.start()
    base = f"http://127.0.0.1:{daemon.port}"
    sent: list[int] = []
    failures: list[str] = []
    poster = threading.Thread(target=stream, args=(base, sent, failures))
    poster.start()
    try:
        wait_for(lambda: len(sent) >= 3_000, timeout=300, interval=0.05)
        subprocess.run(["rabbitmqctl", "stop_app"], check=True, capture_output=True, timeout=120)
        time.sleep(2.0)
        subprocess.run(["rabbitmqctl", "start_app"], check=True, capture_output=True, timeout=120)
        poster.join(timeout=600)
        assert not failures, failures[:3]
        wait_delivered(hub, tmp_path / "effects.db")
        check_exactly_once(hub, tmp_path / "effects.db")
    finally:
        daemon.stop()
