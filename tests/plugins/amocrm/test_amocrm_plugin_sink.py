"""hub → amoCRM: clients, calls, tasks and deals reach the sandbox once, and their webhooks come back as nothing."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from amocrm_testing import WEBHOOK_SECRET, Connected
from sqlalchemy import func, select

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


def excel_client(row: str = "1", name: str = "Анна Смирнова", phone: str = PHONE, **extra: Any) -> ClientObservation:
    return ClientObservation(
        source=SourceRef(system="excel", account="clients.xlsx", entity="row", id=row),
        name=name,
        phones=[phone],
        **extra,
    )


def outbox(hub: Any) -> int:
    with hub.store.read() as conn:
        return int(conn.execute(select(func.count()).select_from(s.outbox)).scalar_one())


@contextmanager
def running(connected: Connected) -> Iterator[tuple[Any, RecordingSink]]:
    """A started hub whose web app is served on a real port, the sandbox posting its webhooks there; a
    recording sink of another system shows every event the hub emits."""
    other = RecordingSink("recorder", "recorder")
    hub = connected.hub(("other", SinkPlugin(other)))
    hub.start("all")
    with serve_asgi(create_app(hub)) as url:
        connected.sandbox.admin("webhooks", {"url": f"{url}/webhooks/amocrm/{WEBHOOK_SECRET}"})
        yield hub, other
        connected.sandbox.admin("webhooks", method="DELETE")


def settle(connected: Connected, hub: Any) -> None:
    """Wait until amoCRM's webhooks are answered and the hub has handled them."""
    connected.sandbox.sandbox.wait_webhooks(10)
    assert hub.wait_idle(20)


def amo_ref(hub: Any, client_id: int, entity: str = "contact") -> int:
    refs = [r for r in hub.get_client(client_id).refs if r.system == "amocrm" and r.entity == entity]
    return int(refs[0].id) if refs else 0


def test_a_client_from_another_source_reaches_amocrm_once_and_its_echo_emits_nothing(connected: Connected) -> None:
    records = connected.sandbox.sandbox.account.records
    with running(connected) as (hub, other):
        applied = hub.ingest(excel_client(emails=["anna@example.ru"]))
        contact_id = wait_for(lambda: amo_ref(hub, applied.client_id))
        contact = records["contacts"][contact_id]
        assert contact["name"] == "Анна Смирнова"
        settle(connected, hub)
        wait_for(lambda: len(other.received) == 1)
        emitted = outbox(hub)
        # Redelivery of the same event (a crash before its delivery was recorded) creates nothing new.
        sink = hub.sinks[f"amocrm:{connected.key}"]
        sink.deliver(other.received)
        settle(connected, hub)
        assert len(records["contacts"]) == 1
        assert outbox(hub) == emitted and len(other.received) == 1
        assert any(w.status == 200 for w in connected.sandbox.sandbox.sent_webhooks)


def test_an_existing_amocrm_contact_is_found_by_phone_and_merged_not_duplicated(connected: Connected) -> None:
    client = connected.sandbox.client()
    [made] = client.add(
        "/api/v4/contacts",
        [
            {
                "name": "Анна",
                "custom_fields_values": [
                    {"field_code": "PHONE", "values": [{"value": "8 916 111-22-33", "enum_code": "MOB"}]},
                    {"field_code": "EMAIL", "values": [{"value": "old@example.ru"}]},
                ],
            }
        ],
    )
    records = connected.sandbox.sandbox.account.records
    with running(connected) as (hub, _other):
        applied = hub.ingest(excel_client(emails=["anna@example.ru"]))
        assert wait_for(lambda: amo_ref(hub, applied.client_id)) == made["id"]
        settle(connected, hub)
    assert len(records["contacts"]) == 1
    values = {
        cf["field_code"]: [v["value"] for v in cf["values"]]
        for cf in records["contacts"][made["id"]]["custom_fields_values"]
    }
    assert values["PHONE"] == ["8 916 111-22-33"]  # kept as it was, not wiped or re-added
    assert values["EMAIL"] == ["old@example.ru", "anna@example.ru"]


def test_a_telephony_call_becomes_an_amocrm_call_on_the_right_contact_and_a_missed_call_task_a_task(
    connected: Connected,
) -> None:
    account = connected.sandbox.sandbox.account
    with running(connected) as (hub, other):
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
        contact_id = wait_for(lambda: amo_ref(hub, call.client_id))
        wait_for(lambda: account.calls and account.records["tasks"])
        settle(connected, hub)
        [note] = [n for n in account.notes.values() if n["note_type"] == "call_in"]
        assert (note["entity_type"], note["entity_id"]) == ("contacts", contact_id)
        assert note["params"]["phone"] == "+79161112233" and note["params"]["uniq"].startswith("crm-hub-telephony-")
        [task] = account.records["tasks"].values()
        assert (task["entity_type"], task["entity_id"], task["task_type_id"]) == ("contacts", contact_id, 1)
        assert task["text"] == "Перезвонить: пропущенный звонок"
        assert task["complete_till"] == int(datetime(2025, 3, 1, 11, 0, tzinfo=UTC).timestamp())
        # The call note and the task came back as webhooks: linked to the hub's items, no new event.
        settle(connected, hub)
        wait_for(lambda: len(other.received) >= 3, timeout=3)
        assert sorted(e.type for e in other.received) == ["client.changed", "interaction.added", "task.changed"], [
            (e.type, e.origin.entity, e.changed) for e in other.received
        ]
        timeline = hub.timeline(call.client_id)
        assert len(timeline) == 2
        assert all(any(r.system == "amocrm" for r in item.refs) for item in timeline)


def test_a_deal_from_bitrix24_becomes_a_lead_with_the_mapped_pipeline_and_status(connected: Connected) -> None:
    connected.env(PIPELINE_MAP='{"Партнёры": 7000002}', STATUS_MAP='{"Договор": 7200002}')
    leads = connected.sandbox.sandbox.account.records["leads"]
    with running(connected) as (hub, other):
        b24 = SourceRef(system="bitrix24", account="acme.bitrix24.ru", entity="deal", id="77")
        deal = hub.ingest(
            DealObservation(
                source=b24,
                client=ClientKey(phones=[PHONE], name="ООО Ромашка"),
                title="Поставка бумаги",
                pipeline="Партнёры",
                stage="Договор",
                status="open",
                amount=Decimal("125000"),
            )
        )
        wait_for(lambda: leads)
        [lead] = leads.values()
        assert (lead["name"], lead["price"], lead["pipeline_id"], lead["status_id"]) == (
            "Поставка бумаги",
            125000,
            7000002,
            7200002,
        )
        contact_id = wait_for(lambda: amo_ref(hub, deal.client_id))
        assert connected.sandbox.sandbox.account.linked("leads", lead["id"], "contacts") == [contact_id]
        hub.ingest(DealObservation(source=b24, client=ClientKey(client_id=deal.client_id), status="won"))
        wait_for(lambda: lead["status_id"] == 142)
        settle(connected, hub)
        assert len(leads) == 1
        assert sorted(e.type for e in other.received) == ["client.changed", "deal.changed", "deal.changed"]
