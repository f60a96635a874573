"""P4 and P5 for amoCRM, against the local sandbox at amoCRM's real limit (7 requests/s).

P4: initial sync of N clients (default 10,000) from the sandbox into the hub (backfill, 250 a page) and from the hub
into an empty sandbox (``hub amocrm push``'s writer, 50 a request): requests against the minimum, rate-limit errors,
wall time against the rate-limit floor (requests / 7 per second).
P5: a change in amoCRM → its webhook → re-read → ingested → delivered to a recording sink, p50/p99 over 200 changes
(paced below the limit, so no deliberate rate-limit wait is included).

Run: ``python bench/amocrm_sync.py [--clients N] [--changes N] [--skip-p5]``.
"""

from __future__ import annotations

import argparse
import math
import os
import statistics
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from crm_hub_plugins.amocrm import plugin
from crm_hub_plugins.amocrm.connection import accounts
from crm_hub_plugins.amocrm.inbound import Inbound
from crm_hub_plugins.amocrm.sandbox import create_app as sandbox_app
from crm_hub_plugins.amocrm.sandbox import seed
from crm_hub_plugins.amocrm.sink import Writer
from hub import hookimpl
from hub.core.events import ClientObservation, Event, SourceRef
from hub.core.hub import Hub
from hub.core.logging import configure_logging
from hub.core.plugins import PluginHost
from hub.core.settings import load_settings
from hub.core.sinks import Sink
from hub.testing import serve_asgi
from hub.web.app import create_app as hub_app

RATE = 7.0
SECRET = "bench-webhook-secret-0123456789"


class TimingSink(Sink):
    """Records when each client's event arrives."""

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
    hub = Hub(settings, PluginHost(autoload=False, extra=[("amocrm", plugin), *extra]))
    hub.migrate()
    return hub


def ratio_line(label: str, value: float, base: float, unit: str = "") -> str:
    return f"  {label}: {value:.2f}{unit} vs {base:.2f}{unit} → ratio {value / base:.3f}"


def p4(tmp: Path, url: str, sb: Any, n: int) -> None:
    print(f"P4 amoCRM initial sync of {n} clients (sandbox limit {RATE:g} requests/s)")
    sb.reset()
    with sb.account.lock:
        seed(sb, {"contacts": n})
    hub = make_hub(tmp, "read")
    account = accounts(hub).get()
    started = time.perf_counter()
    fetched = sum(len(page) for page in Inbound(account)._pages("/api/v4/contacts", "contacts", {}))
    reads, read_wall = account.client.requests_sent, time.perf_counter() - started
    print(f" sandbox reads alone ({fetched} contacts, no storing):")
    print(ratio_line("wall time", read_wall, reads / RATE, " s") + f" for {reads} requests")
    account.limiter.acquire(account.limiter.spec.burst)  # start the full run with the bucket as the remote sees it
    started = time.perf_counter()
    summary = Inbound(account).backfill(entities=("companies", "contacts"))
    wall = time.perf_counter() - started
    minimum = math.ceil(n / 250)
    requests = summary.requests
    print(f" sandbox → hub: {summary.created} clients created, {summary.rejected} rejected")
    print(f"  requests: {requests} vs minimum {minimum} (contacts at 250 a page) → ratio {requests / minimum:.3f}")
    print(f"  rate-limit errors (429): {sb.rate_limited}")
    print(ratio_line("wall time", wall, requests / RATE, " s") + " (floor: requests / 7 per second)")
    print(f"  of which storing in the hub (core ingest_many): {wall - read_wall:.2f} s beyond the reads")
    hub.store.dispose()

    sb.reset()
    hub = make_hub(tmp, "write")
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
    account = accounts(hub).get()
    writer = Writer(account)
    before = account.client.requests_sent
    started = time.perf_counter()
    page: list[Any] = []
    for view in hub.iter_clients():
        page.append(view)
        if len(page) == 50:
            writer.ensure_clients(page)
            page = []
    if page:
        writer.ensure_clients(page)
    wall = time.perf_counter() - started
    requests = account.client.requests_sent - before
    minimum = math.ceil(n / 50)
    print(f" hub → sandbox: {len(sb.account.records['contacts'])} contacts in the sandbox")
    print(f"  requests: {requests} vs minimum {minimum} (50 a write) → ratio {requests / minimum:.3f}")
    print(f"  rate-limit errors (429): {sb.rate_limited}")
    print(ratio_line("wall time", wall, requests / RATE, " s") + " (floor: requests / 7 per second)")
    hub.store.dispose()


def p5(tmp: Path, url: str, sb: Any, changes: int, pace: float) -> None:
    print(f"P5 amoCRM webhook → re-read → ingest → delivered to a sink, {changes} changes at {pace:g}/s")
    sb.reset()
    recorder = TimingSink()
    hub = make_hub(tmp, "p5", ("recorder", Recorder(recorder)))
    hub.start("all")
    with serve_asgi(hub_app(hub)) as hub_url:
        sb.webhook_urls[:] = [f"{hub_url}/webhooks/amocrm/{SECRET}"]
        with sb.account.lock:
            result, _ = sb.account.write(
                "contacts",
                [
                    {
                        "name": f"Контакт {i}",
                        "custom_fields_values": [{"field_code": "PHONE", "values": [{"value": f"+7918{i:07d}"}]}],
                    }
                    for i in range(changes)
                ],
                update=False,
            )
        ids = [r["id"] for r in result]
        sent: dict[str, float] = {}
        for i, contact_id in enumerate(ids):
            name = f"Изменение {i}"
            with sb.account.lock:
                _, made = sb.account.write("contacts", [{"id": contact_id, "name": name}], update=True)
            sent[name] = time.perf_counter()
            sb.emit(made)
            time.sleep(1 / pace)
        deadline = time.monotonic() + 60
        while len(set(sent) & set(recorder.arrived)) < len(sent) and time.monotonic() < deadline:
            time.sleep(0.05)
        sb.webhook_urls.clear()
    hub.stop(grace=5)
    latencies = sorted((recorder.arrived[k] - t) * 1000 for k, t in sent.items() if k in recorder.arrived)
    if not latencies:
        print("  no change arrived")
        return
    p50 = statistics.median(latencies)
    p99 = latencies[min(len(latencies) - 1, math.ceil(0.99 * len(latencies)) - 1)]
    print(f"  delivered {len(latencies)}/{len(sent)}; p50 {p50:.1f} ms, p99 {p99:.1f} ms (target p99 ≤ 500 ms)")
    print(f"  rate-limit errors (429): {sb.rate_limited}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--clients", type=int, default=10_000)
    parser.add_argument("--changes", type=int, default=200)
    parser.add_argument("--pace", type=float, default=5.0, help="changes per second in P5 (below the 7/s limit)")
    parser.add_argument("--skip-p5", action="store_true")
    args = parser.parse_args()
    configure_logging("warning", "auto")
    app = sandbox_app(rate_limit=RATE)
    sb = app.state.sandbox
    with tempfile.TemporaryDirectory() as tmp, serve_asgi(app) as url:
        os.environ.update(
            HUB_AMOCRM__BASE_URL=url,
            HUB_AMOCRM__LONG_LIVED_TOKEN=sb.long_lived_token,
            HUB_AMOCRM__WEBHOOK_SECRET=SECRET,
            HUB_AMOCRM__RECONCILE_INTERVAL="86400",
            HUB_LOG_LEVEL="warning",
        )
        p4(Path(tmp), url, sb, args.clients)
        if not args.skip_p5:
            p5(Path(tmp), url, sb, args.changes, args.pace)


if __name__ == "__main__":
    main()
