"""Under faults: a portal that answers a fifth of its requests with 5xx, cut connections or lost answers, and
pushes operation-limit 429s, still gets every client once, and the hub never trips its leaky bucket."""

from __future__ import annotations

from typing import Any

import pytest
from bitrix24_testing import Wired
from test_bitrix24_plugin_sink import running

from hub.core.events import ClientObservation, SourceRef
from tests.conftest import wait_for

pytestmark = pytest.mark.slow
CLIENTS = 200


def test_a_failing_portal_gets_every_client_once_and_no_limit_error(wired_embedded: Wired, make_portal: Any) -> None:
    portal = make_portal(rate=50, burst=20, seed=13)
    wired_embedded.env(WEBHOOK_URL=portal.webhook_url, RATE_LIMIT="50/s burst 20")
    sandbox = portal.sandbox
    for kind in ("status", "drop", "lost"):
        sandbox.add_fault(kind, count=10_000, status=503 if kind == "status" else 500, chance=0.07)
    sandbox.block_method("crm.contact.add", 2)
    wired_embedded.portal = portal
    with running(wired_embedded) as (hub, _other):
        hub.ingest_many(
            [
                ClientObservation(
                    source=SourceRef(system="excel", entity="row", id=str(i)),
                    name=f"Клиент {i}",
                    phones=[f"+7916{i:07d}"],
                )
                for i in range(CLIENTS)
            ]
        )
        wait_for(lambda: len(sandbox.crm.records["contact"]) >= CLIENTS and hub.wait_idle(1), timeout=240, interval=0.5)
    phones = [m["VALUE"] for c in sandbox.crm.records["contact"].values() for m in c.get("PHONE") or []]
    assert len(phones) == len(set(phones)) == CLIENTS, "a client was created twice in the portal"
    assert sandbox.stats["limit_exceeded"] == 0, "the hub tripped the portal's leaky bucket"
    faults = sum(v for k, v in sandbox.stats.items() if k.startswith("fault_"))
    print(f"{sandbox.requests} requests, {faults} failed on purpose, {sandbox.stats['operation_limited']} limited")
