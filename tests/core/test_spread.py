"""With several worker processes on RabbitMQ, each consumes a share of the partitions; order holds throughout."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path

import pytest

from hub.core.assignment import share
from hub.core.events import ClientKey, ClientObservation, Event, InteractionObservation, SourceRef
from tests.conftest import wait_for
from tests.core.effect_sink import open_effects
from tests.core.sinks import RecordingSink, SinkPlugin

ROOT = Path(__file__).resolve().parents[2]


def test_live_workers_share_the_partitions_round_robin_and_a_newcomer_counts_itself():
    assert share("a", ["a", "b"], 8) == {0, 2, 4, 6}
    assert share("b", ["a", "b"], 8) == {1, 3, 5, 7}
    assert share("c", ["a", "b"], 6) == {2, 5}  # not yet listed: it still takes its share
    assert share("a", [], 4) == {0, 1, 2, 3}
    shares = [share(w, ["w1", "w2", "w3", "w4", "w5"], 4) for w in ["w1", "w2", "w3", "w4", "w5"]]
    assert sorted(p for s in shares for p in s) == [0, 1, 2, 3]  # more workers than partitions: one idles


class StampedSink(RecordingSink):
    """Records (clock, worker, event) in one list shared by every worker, to check order across them."""

    def __init__(self, worker: str, log: list, lock: threading.Lock) -> None:
        super().__init__("crm", "bitrix24", "portal")
        self.worker, self.log, self.shared_lock = worker, log, lock

    def deliver(self, events: Sequence[Event]) -> None:
        super().deliver(events)
        with self.shared_lock:
            self.log.extend((time.monotonic_ns(), self.worker, e) for e in events)


def row(i: int) -> ClientObservation:
    return ClientObservation(source=SourceRef(system="excel", entity="row", id=str(i)), phones=[f"+7916{i:07d}"])


def call(i: int, phone: int) -> InteractionObservation:
    return InteractionObservation(
        source=SourceRef(system="pbx", entity="call", id=f"c{i}"),
        channel="call",
        direction="in",
        status="answered",
        client=ClientKey(phones=[f"+7916{phone:07d}"]),
    )


@pytest.mark.postgres
def test_two_workers_each_deliver_a_share_in_client_order_and_one_leaving_hands_its_share_over(production):
    log: list = []
    lock = threading.Lock()
    a_sink, b_sink = StampedSink("a", log, lock), StampedSink("b", log, lock)
    a = production.hub([("s", SinkPlugin(a_sink))], partitions=8)
    b = production.hub([("s", SinkPlugin(b_sink))], partitions=8)
    a.start("worker")
    for i in range(20):
        a.ingest(row(i))
    b.start("worker")  # joins mid-stream: the partitions move while events flow
    for i in range(400):
        a.ingest(call(i, i % 20))
    wait_for(lambda: len(log) == 420, timeout=60)
    assert a.assigner is not None and b.assigner is not None
    wait_for(lambda: len(a.assigner.owned()) == 4 and len(b.assigner.owned()) == 4)
    assert a.assigner.owned().isdisjoint(b.assigner.owned())

    shares = defaultdict(int)
    for _at, worker, _event in log:
        shares[worker] += 1
    assert shares["a"] > 0 and shares["b"] > 0, shares
    versions = defaultdict(list)
    for _at, _worker, event in sorted(log, key=lambda row: row[0]):
        versions[event.client_id].append(event.version)
    for client, seen in versions.items():
        assert seen == sorted(seen), f"client {client} delivered out of order: {seen}"
    assert len({e.event_id for _at, _w, e in log}) == 420  # nothing delivered twice

    b.stop(grace=5)  # leaves the membership: a takes every partition
    wait_for(lambda: a.assigner.owned() == frozenset(range(8)), timeout=15)
    before = len(b_sink.event_ids())
    for i in range(400, 480):
        a.ingest(call(i, i % 20))
    wait_for(lambda: len(log) == 500, timeout=60)
    assert len(b_sink.event_ids()) == before


@pytest.mark.slow
@pytest.mark.postgres
def test_a_killed_worker_has_its_partitions_taken_over_within_seconds(production, tmp_path):
    effects = tmp_path / "effects.db"
    env = {k: v for k, v in os.environ.items() if not k.startswith("HUB_")}
    env.update(production.env())
    env.update(
        {
            "PYTHONPATH": str(ROOT),
            "HUB_PLUGIN_MODULES": "tests.core.effect_sink",
            "HUB_DISABLE_PLUGIN_AUTOLOAD": "1",
            "HUB_TEST_EFFECTS_DB": str(effects),
            "HUB_LOG_LEVEL": "warning",
            "HUB_PARTITIONS": "8",
        }
    )
    hub = production.hub(partitions=8)
    hub.prepare()
    logs = [open(tmp_path / f"worker{k}.log", "w") for k in range(2)]  # noqa: SIM115
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "hub.cli", "run", "--role", "worker", "--metrics-port", "0"],
            env=env,
            stdout=f,
            stderr=f,
        )
        for f in logs
    ]
    try:
        conn = open_effects(str(effects))
        for i in range(300):
            hub.ingest(
                ClientObservation(source=SourceRef(system="excel", entity="row", id=str(i)), phones=[f"+7916{i:07d}"])
            )
        wait_for(lambda: conn.execute("SELECT count(*) FROM effects").fetchone()[0] == 300, timeout=60)
        procs[0].send_signal(signal.SIGKILL)
        procs[0].wait()
        killed = time.monotonic()
        for i in range(300, 600):
            hub.ingest(
                ClientObservation(source=SourceRef(system="excel", entity="row", id=str(i)), phones=[f"+7916{i:07d}"])
            )
        wait_for(lambda: conn.execute("SELECT count(*) FROM effects").fetchone()[0] == 600, timeout=60)
        taken_over = time.monotonic() - killed
        assert taken_over < 20, f"the survivor took {taken_over:.1f} s to take the dead worker's partitions"
    finally:
        for p in procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
                p.wait(30)
        for f in logs:
            f.close()
