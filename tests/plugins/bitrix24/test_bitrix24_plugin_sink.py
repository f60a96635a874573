"""hub → Bitrix24: clients, calls, tasks and deals reach the sandbox once; the portal's echo events change nothing."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest
from bitrix24_testing import Wired
from sqlalchemy import func, select

from crm_hub_plugins.bitrix24.cli import EVENTS
from crm_hub_plugins.bitrix24.connection import portals
from hub.core import schema as s
from hub.core.events import (
    ClientKey,
    ClientObservation,
    DealObservation,
    InteractionObservation,
    SourceRef,
    TaskObservation,
)
from hub.testing import serve_asgi
from hub.web.app import create_app
from tests.conftest import wait_for
from tests.core.sinks import RecordingSink, SinkPlugin

PHONE = "+79161112233"


def amo_client(name: str = "Анна Смирнова", phone: str = PHONE, **extra: Any) -> ClientObservation:
    return ClientObservation(
        source=SourceRef(system="amocrm", account="acme", entity="contact", id="501"),
        name=name,
        phones=[phone],
        **extra,
    )


def outbox(hub: Any) -> int:
    with hub.store.read() as conn:
        return int(conn.execute(select(func.count()).select_from(s.outbox)).scalar_one())


@contextmanager
def running(wired: Wired) -> Iterator[tuple[Any, RecordingSink]]:
    """A started hub served on a real port; the sandbox portal posts its events to the hub's /webhooks/bitrix24
    (bound with event.bind, as an application does); a recording sink shows every event the hub emits."""
    other = RecordingSink("recorder", "recorder")
    hub = wired.hub(("other", SinkPlugin(other)))
    hub.start("all")
    with serve_asgi(create_app(hub)) as url:
        client = portals(hub).get().client
        for event in EVENTS:
            client.call("event.bind", {"event": event, "handler": f"{url}/webhooks/bitrix24"})
        yield hub, other


def settle(wired: Wired, hub: Any) -> None:
    """Wait until the portal's events are delivered to the hub and handled."""
    for _ in range(3):
        assert wired.portal.sandbox.wait_for_deliveries(10)
        assert hub.wait_idle(20)
    assert not wired.portal.sandbox.delivery_failures


def b24_ref(hub: Any, client_id: int, entity: str = "contact") -> int:
    refs = [r for r in hub.get_client(client_id).refs if r.system == "bitrix24" and r.entity == entity]
    return int(refs[0].id) if refs else 0


def values(record: dict[str, Any], kind: str) -> list[str]:
    return [m["VALUE"] for m in record.get(kind) or []]


def test_a_client_from_another_source_reaches_bitrix24_once_and_its_echo_emits_nothing(wired: Wired) -> None:
    contacts = wired.portal.sandbox.crm.records["contact"]
    with running(wired) as (hub, other):
        applied = hub.ingest(amo_client(emails=["anna@example.ru"]))
        contact_id = wait_for(lambda: b24_ref(hub, applied.client_id))
        assert values(contacts[contact_id], "PHONE") == [PHONE]
        assert contacts[contact_id]["NAME"] == "Анна Смирнова"
        settle(wired, hub)
        wait_for(lambda: len(other.received) == 1)
        emitted = outbox(hub)
        # Redelivery of the same event (a crash before its delivery was recorded) creates nothing new.
        hub.sinks[f"bitrix24:{wired.key}"].deliver(other.received)
        settle(wired, hub)
        assert len(contacts) == 1
        assert outbox(hub) == emitted and len(other.received) == 1
        assert any(e["payload"]["event"] == "ONCRMCONTACTADD" for e in wired.portal.sandbox.events)


def test_an_existing_contact_is_found_by_phone_and_its_extra_phone_is_kept(wired: Wired) -> None:
    crm = wired.portal.sandbox.crm
    existing = crm.add(
        "contact",
        {"NAME": "Анна", "PHONE": [{"VALUE": "8 916 111-22-33"}, {"VALUE": "+7 495 000-00-00"}]},
        emit=False,
    )
    with running(wired) as (hub, _other):
        applied = hub.ingest(amo_client(emails=["anna@example.ru"]))
        assert wait_for(lambda: b24_ref(hub, applied.client_id)) == existing
        wait_for(lambda: values(crm.records["contact"][existing], "EMAIL"))
        settle(wired, hub)
        hub.ingest(amo_client(phone="+7 926 555-44-33"))  # the hub learns another number
        wait_for(lambda: len(values(crm.records["contact"][existing], "PHONE")) == 3)
        settle(wired, hub)
        assert len(crm.records["contact"]) == 1
        record = crm.records["contact"][existing]
        assert values(record, "PHONE") == ["8 916 111-22-33", "+7 495 000-00-00", "+79265554433"]
        assert values(record, "EMAIL") == ["anna@example.ru"]
        # Bitrix24's extra number came back through the echo and is now the hub's too.
        assert set(hub.get_client(applied.client_id).phones) == {PHONE, "+74950000000", "+79265554433"}


def test_a_telephony_call_becomes_an_activity_and_a_missed_call_task_a_todo(wired: Wired) -> None:
    crm = wired.portal.sandbox.crm
    with running(wired) as (hub, other):
        call = hub.ingest(
            InteractionObservation(
                source=SourceRef(system="telephony", account="pbx", entity="call", id="1700000000.42"),
                channel="call",
                client=ClientKey(phones=["8 (916) 111-22-33"]),
                direction="in",
                occurred_at=datetime(2025, 3, 1, 10, 0, tzinfo=UTC),
                duration_s=0,
                status="missed",
            )
        )
        hub.ingest(
            TaskObservation(
                source=SourceRef(system="telephony", account="pbx", entity="callback", id="1700000000.42"),
                client=ClientKey(client_id=call.client_id),
                title="Перезвонить: пропущенный звонок",
                due_at=datetime(2025, 3, 1, 11, 0, tzinfo=UTC),
            )
        )
        contact_id = wait_for(lambda: b24_ref(hub, call.client_id))
        wait_for(lambda: len(crm.records["activity"]) == 2)
        settle(wired, hub)
        by_type = {a["TYPE_ID"]: a for a in crm.records["activity"].values()}
        assert set(by_type) == {"2", "6"}
        activity, todo = by_type["2"], by_type["6"]
        assert (activity["OWNER_TYPE_ID"], activity["OWNER_ID"], activity["DIRECTION"]) == ("3", str(contact_id), "1")
        assert activity["COMMUNICATIONS"][0]["VALUE"] == PHONE
        assert (todo["PROVIDER_ID"], todo["OWNER_ID"], todo["COMPLETED"]) == ("CRM_TODO", str(contact_id), "N")
        assert todo["SUBJECT"] == "Перезвонить: пропущенный звонок"
        assert todo["DEADLINE"].startswith("2025-03-01T11:00:00")
        # Both came back as ONCRMACTIVITYADD events: linked to the hub's items, nothing new emitted.
        wait_for(lambda: len(other.received) >= 3)
        assert sorted(e.type for e in other.received) == ["client.changed", "interaction.added", "task.changed"]
        timeline = hub.timeline(call.client_id)
        assert len(timeline) == 2
        assert all(any(r.system == "bitrix24" for r in item.refs) for item in timeline)


def test_a_deal_from_amocrm_becomes_a_deal_with_the_mapped_stage(wired: Wired) -> None:
    wired.env(STAGE_MAP='{"Договор": "PREPARATION", "Счёт": "PREPAYMENT_INVOICE"}')
    deals = wired.portal.sandbox.crm.records["deal"]
    with running(wired) as (hub, other):
        amo = SourceRef(system="amocrm", account="acme", entity="lead", id="77")
        deal = hub.ingest(
            DealObservation(
                source=amo,
                client=ClientKey(phones=[PHONE], name="Анна Смирнова"),
                title="Поставка бумаги",
                stage="Договор",
                status="open",
                amount=Decimal("125000"),
                currency="RUB",
            )
        )
        wait_for(lambda: deals)
        [record] = deals.values()
        contact_id = wait_for(lambda: b24_ref(hub, deal.client_id))
        assert (record["TITLE"], record["STAGE_ID"], record["OPPORTUNITY"], record["CONTACT_ID"]) == (
            "Поставка бумаги",
            "PREPARATION",
            "125000",
            str(contact_id),
        )
        settle(wired, hub)
        hub.ingest(DealObservation(source=amo, client=ClientKey(client_id=deal.client_id), stage="Счёт"))
        wait_for(lambda: record["STAGE_ID"] == "PREPAYMENT_INVOICE")
        settle(wired, hub)
        assert len(deals) == 1
        wait_for(lambda: len(other.received) >= 3)
        assert sorted(e.type for e in other.received) == ["client.changed", "deal.changed", "deal.changed"]
        [item] = hub.timeline(deal.client_id, kinds=["deal"])
        assert item.fields["stage"] == "Счёт"


def test_the_read_back_of_the_hub_s_own_write_is_known_from_the_ledger_without_a_lookup(
    wired: Wired, monkeypatch: pytest.MonkeyPatch
) -> None:
    from crm_hub_plugins.bitrix24.connection import portals
    from crm_hub_plugins.bitrix24.inbound import Inbound

    contacts = wired.portal.sandbox.crm.records["contact"]
    with running(wired) as (hub, _other):
        applied = hub.ingest(amo_client(emails=["anna@example.ru"]))
        contact_id = wait_for(lambda: b24_ref(hub, applied.client_id))
        settle(wired, hub)
        inbound = Inbound(portals(hub).get())
        record = inbound.read("contact", str(contact_id))
        assert record is not None
        looked_up: list[Any] = []
        monkeypatch.setattr(hub, "find_clients", lambda **kw: looked_up.append(kw) or [])
        assert inbound.apply("contact", record) == "echo" and looked_up == []
        monkeypatch.undo()
        # A person adds a phone beside the hub's write: not an echo, and it reaches the hub.
        contacts[contact_id]["PHONE"].append({"ID": "99", "VALUE": "+79035550199", "VALUE_TYPE": "WORK"})
        changed = inbound.read("contact", str(contact_id))
        assert changed is not None and inbound.apply("contact", changed) == "updated"
        assert "+79035550199" in hub.get_client(applied.client_id).phones
