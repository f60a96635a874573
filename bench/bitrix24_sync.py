"""P4 and P5 for Bitrix24, against the local sandbox portal at Bitrix24's real limit (2 requests/s, burst 50).

P4: initial sync of N clients (default 10,000) from the sandbox into the hub (backfill: 2,500 rows a request, so
at least N / 2,500 requests) and from the hub into an empty sandbox (the writer behind the sink and ``hub bitrix24
push``: 50 writes a ``batch``, so at least N / 50 requests), with request counts against the minimum,
QUERY_LIMIT_EXCEEDED answers, and wall time against the rate-limit floor ((requests - 50) / 2 s); side by side with
fast_bitrix24 reading the same contacts from the same sandbox.
P5: a change in Bitrix24 → its outbound event → POST /webhooks/bitrix24 → inbox → entity read → ingested →
delivered to a recording sink (standing in for the other CRM), p50/p99 over 200 changes, paced under the limit.

Run: ``python bench/bitrix24_sync.py [--clients N] [--changes N] [--pace R] [--skip-p5] [--skip-sink]``.
"""

from __future__ import annotations

import argparse
import logging
import math
import os
import statistics
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from crm_hub_plugins.bitrix24 import plugin
from crm_hub_plugins.bitrix24.connection import portals
from crm_hub_plugins.bitrix24.reconcile import PortalReconciler
from crm_hub_plugins.bitrix24.sandbox import create_app as sandbox_app
from crm_hub_plugins.bitrix24.sink import Writer
from hub import hookimpl
from hub.core.events import ClientObservation, Event, SourceRef
from hub.core.hub import Hub
from hub.core.logging import configure_logging
from hub.core.plugins import PluginHost
from hub.core.settings import load_settings
from hub.core.sinks import Sink
from hub.testing import serve_asgi
from hub.web.app import create_app as hub_app

RATE, BURST = 2.0, 50
READ_PAGE, WRITE_BATCH = 2500, 50


class TimingSink(Sink):
    """Records when each client's change arrives (by the name the change gave it)."""

    max_batch = 50

    def __init__(self) -> None:
        self.name, self.system = "recorder", "recorder"
        self.arrived: dict[str, float] = {}

    def deliver(self, events: Sequence[Event]) -> None:
        now = time.perf_counter()
        for event in events:
            if event.client.name:
                self.arrived.setdefault(event.client.name, now)


class Recorder:
    def __init__(self, sink: Sink) -> None:
        self.sink = sink

    @hookimpl
    def hub_register_sinks(self, hub: Any, register: Any) -> None:
        register(self.sink)


def make_hub(tmp: Path, name: str, *extra: tuple[str, Any]) -> Hub:
    settings = load_settings(database_url=f"sqlite:///{tmp / name}.db", bus_url="memory://", data_dir=tmp)
    hub = Hub(settings, PluginHost(autoload=False, extra=[("bitrix24", plugin), *extra]))
    hub.migrate()
    return hub


def floor(requests: int) -> float:
    return max(0.0, (requests - BURST) / RATE)


def wall_line(wall: float, requests: int) -> str:
    base = floor(requests)
    ratio = f"{wall / base:.3f}" if base else "n/a (fits the burst)"
    return f"  wall time: {wall:.2f} s vs floor {base:.2f} s ((requests - {BURST}) / {RATE:g} per s) → ratio {ratio}"


def hub_clients(hub: Hub, n: int) -> None:
    hub.ingest_many(
        [
            ClientObservation(
                source=SourceRef(system="excel", account="bench.xlsx", entity="row", id=str(i)),
                name=f"Клиент {i}",
                phones=[f"+7917{i:07d}"],
                emails=[f"client{i}@example.ru"],
            )
            for i in range(n)
        ]
    )


def p4(tmp: Path, url: str, sb: Any, n: int, sink_path: bool) -> None:
    print(f"P4 Bitrix24 initial sync of {n} clients (sandbox limit {RATE:g} requests/s, burst {BURST})")
    sb.reset()
    sb.crm.seed_contacts(n)
    hub = make_hub(tmp, "read")
    portal = portals(hub).get()
    started = time.perf_counter()
    fetched = sum(1 for _ in portal.client.list_all("crm.contact.list", {"select": ["*", "UF_*", "PHONE", "EMAIL"]}))
    reads, read_wall = portal.client.requests, time.perf_counter() - started
    print(f" sandbox reads alone ({fetched} contacts, no storing): {reads} requests in {read_wall:.2f} s")
    sb.reset()
    sb.crm.seed_contacts(n)
    before_limit = sb.stats["limit_exceeded"]
    before = portal.client.requests
    started = time.perf_counter()
    summary = PortalReconciler(portal).backfill_since(entities=("contact",))
    wall = time.perf_counter() - started
    requests = portal.client.requests - before
    minimum = math.ceil(n / READ_PAGE)
    print(f" sandbox → hub (backfill --only contact): {summary.outcomes[0].stored} clients created")
    print(f"  requests: {requests} vs minimum {minimum} (2,500 rows a request) → ratio {requests / minimum:.3f}")
    print(f"  QUERY_LIMIT_EXCEEDED: {sb.stats['limit_exceeded'] - before_limit}")
    print(wall_line(wall, requests) + f"; storing in the hub (ingest_many): {wall - read_wall:.2f} s beyond the reads")
    hub.store.dispose()

    from fast_bitrix24 import Bitrix

    sb.reset()
    sb.crm.seed_contacts(n)
    started = time.perf_counter()
    b = Bitrix(sb.webhook_url(url), verbose=False, ssl=False)
    logging.getLogger("fast_bitrix24").setLevel(logging.WARNING)
    logging.getLogger("fast_bitrix24").propagate = False
    rows = b.get_all("crm.contact.list", params={"select": ["*", "UF_*", "PHONE", "EMAIL"]})
    fb_wall = time.perf_counter() - started
    print(
        f" fast_bitrix24 get_all of the same {len(rows)} contacts: {sb.requests} requests, {fb_wall:.2f} s, "
        f"QUERY_LIMIT_EXCEEDED {sb.stats['limit_exceeded']}"
    )

    sb.reset()
    hub = make_hub(tmp, "write")
    hub_clients(hub, n)
    portal = portals(hub).get()
    writer = Writer(portal)
    before = portal.client.requests
    started = time.perf_counter()
    page: list[Any] = []
    for view in hub.iter_clients():
        page.append(view)
        if len(page) == WRITE_BATCH:
            writer.ensure_clients(page)
            page = []
    if page:
        writer.ensure_clients(page)
    wall = time.perf_counter() - started
    requests = portal.client.requests - before
    minimum = math.ceil(n / WRITE_BATCH)
    print(f" hub → sandbox (hub bitrix24 push): {len(sb.crm.records['contact'])} contacts in the sandbox")
    print(f"  requests: {requests} vs minimum {minimum} (50 writes a batch) → ratio {requests / minimum:.3f}")
    print(f"  QUERY_LIMIT_EXCEEDED: {sb.stats['limit_exceeded']}")
    print(wall_line(wall, requests))
    hub.store.dispose()

    if not sink_path:
        return
    sb.reset()
    hub = make_hub(tmp, "sink")
    hub.start("all")
    portal = portals(hub).get()
    started = time.perf_counter()
    hub_clients(hub, n)
    while len(sb.crm.records["contact"]) < n and time.perf_counter() - started < 600:
        time.sleep(0.2)
    wall = time.perf_counter() - started
    requests = portal.client.requests
    print(f" hub → sandbox through the sink (events, max_batch 50): {len(sb.crm.records['contact'])} contacts")
    print(f"  requests: {requests} vs minimum {minimum} → ratio {requests / minimum:.3f}")
    print(f"  QUERY_LIMIT_EXCEEDED: {sb.stats['limit_exceeded']}")
    print(wall_line(wall, requests))
    hub.stop(grace=5)


def p5(tmp: Path, url: str, sb: Any, changes: int, pace: float) -> None:
    print(
        f"P5 Bitrix24 event → /webhooks/bitrix24 → read → ingest → delivered to a sink, {changes} changes at {pace:g}/s"
    )
    sb.reset()
    ids = sb.crm.seed_contacts(changes)
    recorder = TimingSink()
    hub = make_hub(tmp, "p5", ("recorder", Recorder(recorder)))
    portal = portals(hub).get()
    PortalReconciler(portal).backfill_since(entities=("contact",))
    hub.start("all")
    with serve_asgi(hub_app(hub)) as hub_url:
        for event in ("ONCRMCONTACTUPDATE",):
            sb._event_bind({"event": event, "handler": f"{hub_url}/webhooks/bitrix24"})
        time.sleep(1.0)
        recorder.arrived.clear()
        made: dict[str, float] = {}
        for i, contact_id in enumerate(ids):
            name = f"Изменение{i}"
            made[f"Тестовый {name}"] = time.perf_counter()
            sb.crm.update("contact", contact_id, {"NAME": name})
            time.sleep(1.0 / pace)
        deadline = time.perf_counter() + 60
        while len(recorder.arrived) < changes and time.perf_counter() < deadline:
            time.sleep(0.05)
        waited = portal.limiter.waited
    latencies = sorted((recorder.arrived[k] - t) * 1000 for k, t in made.items() if k in recorder.arrived)
    p50 = statistics.median(latencies)
    p99 = latencies[min(len(latencies) - 1, math.ceil(0.99 * len(latencies)) - 1)]
    print(f"  delivered {len(latencies)}/{changes}; p50 {p50:.1f} ms, p99 {p99:.1f} ms (target p99 ≤ 500 ms)")
    print(f"  rate-limit waits inside the run: {waited:.2f} s; QUERY_LIMIT_EXCEEDED: {sb.stats['limit_exceeded']}")
    hub.stop(grace=5)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=10_000)
    parser.add_argument("--changes", type=int, default=200)
    parser.add_argument("--pace", type=float, default=2.5, help="changes per second in P5 (the bucket drains 2/s)")
    parser.add_argument("--skip-p4", action="store_true")
    parser.add_argument("--skip-p5", action="store_true")
    parser.add_argument("--skip-sink", action="store_true", help="skip the sink-path variant of the hub → sandbox run")
    args = parser.parse_args()
    configure_logging("warning", "console")
    logging.getLogger("fast_bitrix24").setLevel(logging.WARNING)
    app = sandbox_app(rate=RATE, burst=BURST, collect_events=False)
    sb = app.state.sandbox
    with tempfile.TemporaryDirectory() as tmp, serve_asgi(app) as url:
        os.environ["HUB_BITRIX24__WEBHOOK_URL"] = sb.webhook_url(url)
        os.environ["HUB_BITRIX24__APPLICATION_TOKEN"] = sb.application_token
        os.environ["HUB_BITRIX24__RATE_LIMIT"] = f"{RATE:g}/s burst {BURST}"
        os.environ["HUB_BITRIX24__RECONCILE_INTERVAL"] = "3600"
        if not args.skip_p4:
            p4(Path(tmp), url, sb, args.clients, not args.skip_sink)
        if not args.skip_p5:
            p5(Path(tmp), url, sb, args.changes, args.pace)


if __name__ == "__main__":
    main()
