"""Reminder rules: missed calls not returned, clients not contacted, deals stuck in a stage -> tasks, once."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hub.core.events import ClientKey, ClientObservation, DealObservation, InteractionObservation, SourceRef
from hub.core.reminders import ReminderSettings, evaluate
from tests.conftest import wait_for
from tests.core.sinks import RecordingSink, SinkPlugin

NOW = datetime.now(UTC)


def _client(hub, ext_id: str, phone: str) -> int:
    source = SourceRef(system="bitrix24", account="acme", entity="contact", id=ext_id)
    return hub.ingest(ClientObservation(source=source, name=f"Клиент {ext_id}", phones=[phone])).client_id


def _call(hub, call_id: str, phone: str, direction: str, status: str, at: datetime) -> None:
    hub.ingest(
        InteractionObservation(
            source=SourceRef(system="telephony", account="pbx", entity="call", id=call_id),
            channel="call",
            client=ClientKey(phones=[phone]),
            direction=direction,
            status=status,
            occurred_at=at,
            operator="Олег",
        )
    )


def _tasks(hub) -> list:
    return [t for t in hub.iter_items(kind="task") if t.source.system == "hub"]


def test_a_missed_call_not_returned_in_time_becomes_a_call_back_task_once(embedded):
    hub = embedded.hub()
    _client(hub, "1", "+79161111111")
    _client(hub, "2", "+79162222222")
    _call(hub, "a", "+79161111111", "in", "no_answer", NOW - timedelta(minutes=30))
    _call(hub, "b", "+79162222222", "in", "busy", NOW - timedelta(minutes=5))  # not late yet
    cfg = ReminderSettings(missed_call_minutes=20, no_contact_days=0, stuck_deal_days=0)
    assert evaluate(hub, cfg, NOW).created == 1
    [task] = _tasks(hub)
    assert task.fields["assignee"] == "Олег" and task.fields["title"].startswith("Перезвонить")
    assert evaluate(hub, cfg, NOW).created == 0  # evaluating again changes nothing
    assert evaluate(hub, cfg, NOW + timedelta(minutes=20)).created == 1  # the second call is late now


def test_the_call_back_task_is_closed_once_the_client_is_called_back(embedded):
    hub = embedded.hub()
    _client(hub, "1", "+79161111111")
    _call(hub, "a", "+79161111111", "in", "no_answer", NOW - timedelta(hours=1))
    cfg = ReminderSettings(no_contact_days=0, stuck_deal_days=0)
    evaluate(hub, cfg, NOW)
    _call(hub, "b", "+79161111111", "out", "answered", NOW - timedelta(minutes=1))
    assert evaluate(hub, cfg, NOW).closed == 1
    assert _tasks(hub)[0].fields["done"] is True
    assert evaluate(hub, cfg, NOW).closed == 0


def test_a_client_with_an_open_deal_and_no_contact_gets_a_follow_up_and_a_stuck_deal_a_check(embedded):
    hub = embedded.hub()
    client = _client(hub, "1", "+79161111111")
    quiet = _client(hub, "2", "+79162222222")
    for cid, ext in ((client, "d1"), (quiet, "d2")):
        hub.ingest(
            DealObservation(
                source=SourceRef(system="bitrix24", account="acme", entity="deal", id=ext),
                client=ClientKey(client_id=cid),
                title=f"Сделка {ext}",
                stage="NEW",
                status="open",
                observed_at=NOW - timedelta(days=10),
                fields={"manager": "Анна"},
            )
        )
    _call(hub, "a", "+79161111111", "out", "answered", NOW - timedelta(days=1))
    cfg = ReminderSettings(missed_call_minutes=0, no_contact_days=7, stuck_deal_days=7)
    assert evaluate(hub, cfg, NOW).created == 3  # one follow-up (quiet client), two stuck deals
    titles = sorted(t.fields["title"] for t in _tasks(hub))
    assert titles[0].startswith("Проверить сделку «Сделка d1»") and titles[2].startswith("Связаться с клиентом")
    assert {t.fields["assignee"] for t in _tasks(hub)} == {"Анна"}
    assert evaluate(hub, cfg, NOW).created == 0


def test_reminder_tasks_are_replicated_to_the_crm_sinks(embedded):
    sink = RecordingSink("crm", "amocrm")
    hub = embedded.hub([("s", SinkPlugin(sink))])
    hub.start("all")
    _client(hub, "1", "+79161111111")
    _call(hub, "a", "+79161111111", "in", "no_answer", NOW - timedelta(hours=1))
    evaluate(hub, ReminderSettings(no_contact_days=0, stuck_deal_days=0), NOW)
    events = wait_for(lambda: [e for e in sink.received if e.type == "task.changed"])
    assert events[0].item.fields["title"].startswith("Перезвонить")
