"""P1 / P2: observations applied and fanned out to two sinks, and the same messages through raw kombu.

    python bench/throughput.py                      # P1: embedded default (SQLite file + in-process bus)
    python bench/throughput.py --production         # P2: PostgreSQL + RabbitMQ, two worker processes
    python bench/throughput.py --production --workers 1,2,4   # P2 scaling curve and each worker's share

Prints observations/s end to end (ingest until both sinks hold every event) and the ratio to raw kombu
publish+consume of the same number of messages of the same size on the same transport, measured in the same run.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Sequence
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import contextlib

from kombu import Connection, Consumer, Exchange, Producer, Queue
from sqlalchemy import func, select

from hub import hookimpl
from hub.core import schema as s
from hub.core.events import ClientKey, ClientObservation, Event, InteractionObservation, SourceRef
from hub.core.hub import Hub
from hub.core.logging import configure_logging
from hub.core.plugins import PluginHost
from hub.core.settings import load_settings
from hub.core.sinks import Sink

PG = os.environ.get("HUB_TEST_POSTGRES", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
AMQP = os.environ.get("HUB_TEST_AMQP", "amqp://guest:guest@127.0.0.1:5672//")


class CountingSink(Sink):
    max_batch = 100

    def __init__(self, name: str, system: str) -> None:
        self.name, self.system = name, system
        self.count = 0
        self.lock = threading.Lock()

    def deliver(self, events: Sequence[Event]) -> None:
        with self.lock:
            self.count += len(events)


class TwoSinks:
    def __init__(self) -> None:
        self.sinks = [CountingSink("crm-a", "crm_a"), CountingSink("crm-b", "crm_b")]

    @hookimpl
    def hub_register_sinks(self, hub: Hub, register) -> None:  # type: ignore[no-untyped-def]
        for sink in self.sinks:
            register(sink)


def observations(n: int, offset: int = 0) -> list:
    out = []
    for i in range(offset, offset + n):
        if i % 2 == 0:
            out.append(
                ClientObservation(
                    source=SourceRef(system="excel", account="bench", entity="row", id=str(i)),
                    name=f"Клиент {i}",
                    phones=[f"+7916{i:07d}"],
                    emails=[f"c{i}@example.ru"],
                )
            )
        else:
            out.append(
                InteractionObservation(
                    source=SourceRef(system="pbx", account="bench", entity="call", id=str(i)),
                    channel="call",
                    client=ClientKey(phones=[f"+7916{i - 1:07d}"]),
                    direction="in",
                    status="answered",
                    duration_s=i % 300,
                )
            )
    return out


def count_events(hub: Hub) -> int:
    with hub.store.read() as conn:
        return int(conn.execute(select(func.count()).select_from(s.outbox)).scalar() or 0)


def delivered(hub: Hub) -> int:
    with hub.store.read() as conn:
        return int(conn.execute(select(func.count()).select_from(s.deliveries)).scalar() or 0)


def raw_kombu(url: str, n: int, size: int) -> float:
    """Publish n messages to an exchange bound to two queues and consume both: messages per second."""
    tag = "bench" + uuid.uuid4().hex[:8]
    exchange = Exchange(f"{tag}.x", type="direct", durable=True)
    queues = [Queue(f"{tag}.q{i}", exchange=exchange, routing_key="k", durable=True) for i in range(2)]
    body = "x" * size
    options = {"polling_interval": 0.005} if url.startswith("memory") else {}
    received = [0, 0]
    started = time.perf_counter()
    amqp = url.startswith("amqp")
    with Connection(url, transport_options=options) as pub_conn:
        channel = pub_conn.channel()
        if amqp:  # the same durability as the hub's relay: one transaction per 500 messages
            channel.tx_select()
        producer = Producer(channel)
        for q in queues:
            q(pub_conn.default_channel).declare()

        def consume(i: int) -> None:
            with Connection(url, transport_options=options) as conn:

                def on(body, message):  # type: ignore[no-untyped-def]
                    received[i] += 1
                    message.ack()

                with Consumer(conn.channel(), queues=[queues[i]], callbacks=[on], prefetch_count=200):
                    while received[i] < n:
                        with contextlib.suppress(TimeoutError):
                            conn.drain_events(timeout=1)

        threads = [threading.Thread(target=consume, args=(i,)) for i in range(2)]
        for t in threads:
            t.start()
        for i in range(n):
            producer.publish(body, exchange=exchange, routing_key="k", delivery_mode=2)
            if amqp and i % 500 == 499:
                channel.tx_commit()
        if amqp:
            channel.tx_commit()
        for t in threads:
            t.join()
        elapsed = time.perf_counter() - started
        for q in queues:
            q(pub_conn.default_channel).delete()
        exchange(pub_conn.default_channel).delete()
    return n / elapsed


def run_embedded(n: int, batch: int) -> tuple[float, float, int]:
    tmp = Path(tempfile.mkdtemp())
    settings = load_settings(
        data_dir=tmp, database_url=f"sqlite:///{tmp / 'hub.db'}", bus_url="memory://", log_level="warning"
    )
    plugin = TwoSinks()
    hub = Hub(settings, PluginHost(autoload=False, extra=[("bench", plugin)]))
    hub.migrate()
    hub.start("all")
    obs = observations(n)
    started = time.perf_counter()
    for i in range(0, n, batch):
        hub.ingest_many(obs[i : i + batch])
    ingested = time.perf_counter() - started
    events = count_events(hub)
    while min(s.count for s in plugin.sinks) < events:
        time.sleep(0.01)
    total = time.perf_counter() - started
    hub.stop(grace=10)
    return n / total, n / ingested, events


def _worker(env: dict[str, str], ready, stop, report) -> None:  # type: ignore[no-untyped-def]
    os.environ.update(env)
    configure_logging("warning", "json")
    settings = load_settings()
    plugin = TwoSinks()
    hub = Hub(settings, PluginHost(autoload=False, extra=[("bench", plugin)]))
    hub.start("worker")
    ready.set()
    cpu_before = time.process_time()
    stop.wait()
    report.put((sum(s.count for s in plugin.sinks), time.process_time() - cpu_before))
    hub.stop(grace=10)


def run_production(n: int, batch: int, workers: int) -> tuple[float, float, int, list[tuple[int, float]], float]:
    """End-to-end and ingest rates, events, and per worker (deliveries, CPU s); the ingest side's CPU s."""
    import psycopg

    tag = "bench" + uuid.uuid4().hex[:8]
    raw = PG.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(raw, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{tag}"')
    env = {
        "HUB_DATABASE_URL": f"{PG}?options=-csearch_path%3D{tag}",
        "HUB_BUS_URL": AMQP,
        "HUB_BUS_NAMESPACE": tag,
        "HUB_LOG_LEVEL": "warning",
        "HUB_PARTITIONS": "8",
    }
    os.environ.update(env)
    try:
        settings = load_settings()
        hub = Hub(settings, PluginHost(autoload=False, extra=[("bench", TwoSinks())]))
        hub.migrate()
        hub.prepare()
        ctx = mp.get_context("spawn")
        stop = ctx.Event()
        report = ctx.Queue()
        procs, readies = [], []
        for _ in range(workers):
            ready = ctx.Event()
            p = ctx.Process(target=_worker, args=(env, ready, stop, report))
            p.start()
            procs.append(p)
            readies.append(ready)
        for r in readies:
            r.wait(60)
        time.sleep(3.0)  # two heartbeats: every worker holds its share of the partitions
        obs = observations(n)
        cpu_before = time.process_time()
        started = time.perf_counter()
        threads = []
        chunks = [obs[i : i + batch] for i in range(0, n, batch)]

        def feed(part: list) -> None:  # two web-like ingest threads
            for chunk in part:
                hub.ingest_many(chunk)

        for k in range(2):
            t = threading.Thread(target=feed, args=(chunks[k::2],))
            t.start()
            threads.append(t)
        for t in threads:
            t.join()
        ingested = time.perf_counter() - started
        ingest_cpu = time.process_time() - cpu_before
        events = count_events(hub)
        while delivered(hub) < 2 * events:
            time.sleep(0.05)
        total = time.perf_counter() - started
        stop.set()
        shares = [report.get(timeout=60) for _ in procs]
        for p in procs:
            p.join(30)
        hub.store.dispose()
        return n / total, n / ingested, events, shares, ingest_cpu
    finally:
        with psycopg.connect(raw, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA IF EXISTS "{tag}" CASCADE')
        with Connection(AMQP) as conn:
            ch = conn.channel()
            for sink in ("crm-a", "crm-b"):
                for p in range(8):
                    try:
                        Queue(f"{tag}.sink.{sink}.p{p}")(ch).delete()
                    except Exception:
                        ch = conn.channel()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--production", action="store_true", help="P2: PostgreSQL + RabbitMQ, worker processes")
    parser.add_argument("-n", type=int, default=20000, help="observations (half clients, half calls)")
    parser.add_argument("--batch", type=int, default=200, help="observations per ingest_many call")
    parser.add_argument("--workers", default="2", help="worker processes, or a list for a scaling curve: 1,2,4")
    args = parser.parse_args()
    configure_logging("warning", "json")
    size = len(observations(2)[0].model_dump_json()) * 4  # an event carries the client snapshot: ~4x the input
    if args.production:
        curve = [int(w) for w in str(args.workers).split(",")]
        first = None
        for workers in curve:
            rate, ingest_rate, events, shares, ingest_cpu = run_production(args.n, args.batch, workers)
            baseline = raw_kombu(AMQP, events, size)
            first = first or rate
            print(f"P2 PostgreSQL + RabbitMQ, {workers} worker(s): {args.n} observations -> {events} events -> 2 sinks")
            print(f"  end to end        {rate:10,.0f} observations/s   (x{rate / first:.2f} of {curve[0]} worker(s))")
            print(f"  ingest alone      {ingest_rate:10,.0f} observations/s")
            print(f"  raw kombu         {baseline:10,.0f} messages/s published and consumed by 2 queues ({size} B)")
            print(f"  ratio hub/raw     {rate / baseline:10.2f}  (target >= 0.6)")
            print(f"  CPU ms/obs        ingest (web role) {1000 * ingest_cpu / args.n:.2f}", end="")
            worker_cpu = sum(cpu for _d, cpu in shares)
            print(f"; relay + delivery (worker role) {1000 * worker_cpu / args.n:.2f}")
            total = sum(d for d, _cpu in shares) or 1
            print("  deliveries/worker " + "  ".join(f"{d / total:.0%}" for d, _cpu in shares))
        return
    rate, ingest_rate, events = run_embedded(args.n, args.batch)
    baseline = raw_kombu("memory://", events, size)
    label, target = "P1 embedded (SQLite + in-process bus)", 2000
    print(f"{label}: {args.n} observations -> {events} events -> 2 sinks")
    print(
        f"  end to end        {rate:10,.0f} observations/s   (target >= {target:,}/s: "
        f"{'met' if rate >= target else 'MISSED'})"
    )
    print(f"  ingest alone      {ingest_rate:10,.0f} observations/s")
    print(f"  raw kombu         {baseline:10,.0f} messages/s published and consumed by 2 queues ({size} B)")
    print(f"  ratio hub/raw     {rate / baseline:10.2f}  (events per observation: {events / args.n:.2f})")


if __name__ == "__main__":
    main()
