"""The generic call-event form, and how any finished call becomes timeline entries and call-back tasks."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from pydantic import ValidationError

from crm_hub_plugins.telephony.calls import CallRecord, RingingNotice, call_observations, parse_number
from crm_hub_plugins.telephony.generic import GenericCallAssembler, GenericCallEvent
from crm_hub_plugins.telephony.stats import call_stats
from hub.core.events import InteractionObservation, TaskObservation

T0 = datetime(2025, 11, 17, 7, 0, tzinfo=UTC)


def event(**fields: object) -> GenericCallEvent:
    base: dict[str, object] = {"call_id": "c-1", "event": "ended", "direction": "in", "from": "8 (916) 123-45-67"}
    return GenericCallEvent.model_validate({**base, **fields})


def call(**fields: object) -> CallRecord:
    base: dict[str, object] = {
        "call_id": "L-1",
        "system": "asterisk",
        "account": "pbx1",
        "direction": "in",
        "number": parse_number("79161234567"),
        "extension": "101",
        "status": "answered",
        "started_at": T0,
        "answered_at": T0 + timedelta(seconds=5),
        "ended_at": T0 + timedelta(seconds=65),
    }
    return CallRecord(**{**base, **fields}).with_durations()  # type: ignore[arg-type]


def test_generic_events_in_any_order_give_one_record_and_one_pop() -> None:
    assembler = GenericCallAssembler()
    events = [
        event(event="ringing", extension=101, started_at=T0),
        event(event="ringing", extension=101, started_at=T0),
        event(event="answered", answered_at=T0 + timedelta(seconds=7)),
        event(
            started_at=T0,
            ended_at=T0 + timedelta(seconds=67),
            extension="101",
            recording_url="https://pbx.example/rec/c-1.mp3",
        ),
        event(started_at=T0, ended_at=T0 + timedelta(seconds=67)),
    ]
    updates = [u for e in events for u in assembler.feed(e)]
    [notice] = [u for u in updates if isinstance(u, RingingNotice)]
    [record] = [u for u in updates if isinstance(u, CallRecord)]
    assert notice.extension == "101" and notice.number is not None and notice.number.e164 == "+79161234567"
    assert (record.status, record.ring_s, record.talk_s, record.system) == ("answered", 7.0, 60.0, "generic")
    assert record.recording == "https://pbx.example/rec/c-1.mp3"


def test_generic_form_rejects_what_it_cannot_use() -> None:
    with pytest.raises(ValidationError):
        GenericCallEvent.model_validate({"call_id": "", "event": "ended", "direction": "in"})
    with pytest.raises(ValidationError):
        GenericCallEvent.model_validate({"call_id": "1", "event": "hangup", "direction": "in"})
    assert event(duration_s=0).resolved_status() == "missed"
    assert event(duration_s=12).resolved_status() == "answered"
    assert event(status="busy").resolved_status() == "busy"


def test_answered_inbound_call_is_one_interaction_and_no_task() -> None:
    [interaction] = call_observations(call())
    assert isinstance(interaction, InteractionObservation)
    assert interaction.source.model_dump() == {"system": "asterisk", "account": "pbx1", "entity": "call", "id": "L-1"}
    assert interaction.client.phones == ["+79161234567"]
    assert (interaction.channel, interaction.direction, interaction.status) == ("call", "in", "answered")
    assert (interaction.duration_s, interaction.operator) == (60.0, "101")
    assert interaction.fields["ring_s"] == 5.0


def test_missed_inbound_call_creates_a_callback_task_for_the_extension() -> None:
    missed = call(status="no_answer", answered_at=None, talk_s=None)
    interaction, task = call_observations(missed, operators={"101": "anna@example.com"})
    assert isinstance(task, TaskObservation)
    assert task.source.entity == "callback" and task.source.id == "L-1"
    assert task.title is not None and task.title.startswith("Перезвонить: +7 916 123-45-67")
    assert task.assignee == "anna@example.com"
    assert task.due_at == missed.ended_at + timedelta(minutes=15)  # type: ignore[operator]
    assert interaction.status == "no_answer" and interaction.duration_s == 0.0
    [alone] = call_observations(missed, create_callback_tasks=False)
    assert alone.source == interaction.source


def test_same_call_twice_maps_to_the_same_keys() -> None:
    first = call_observations(call(status="missed", answered_at=None))
    second = call_observations(call(status="missed", answered_at=None))
    assert [o.source for o in first] == [o.source for o in second]


def test_missed_outbound_call_needs_no_callback() -> None:
    assert len(call_observations(call(direction="out", status="busy", answered_at=None))) == 1


def test_international_number_is_kept_in_e164() -> None:
    record = call(number=parse_number("+44 20 7946 0958"))
    [interaction] = call_observations(record)
    assert interaction.client.phones == ["+442079460958"]


@pytest.mark.parametrize("raw", ["Anonymous", "<unknown>", "abc", "123", ""])
def test_a_caller_id_that_is_not_a_phone_yields_no_client_and_no_crash(raw: str) -> None:
    number = parse_number(raw)
    assert number is None or number.e164 is None
    assert call_observations(call(number=number, status="missed", answered_at=None)) == []


def test_internal_calls_stay_off_the_timeline() -> None:
    assert call_observations(call(direction="internal", number=None)) == []


def test_statistics_per_day_operator_and_direction_count_each_call_once() -> None:
    records = [
        call(call_id="1"),
        call(call_id="1"),
        call(call_id="2", status="busy", answered_at=None),
        call(call_id="3", direction="out"),
        call(call_id="4", extension="102", started_at=T0 + timedelta(days=1), answered_at=None, status="missed"),
    ]
    rows = {(r.day.isoformat(), r.extension, r.direction): r for r in call_stats(records)}
    inbound = rows[("2025-11-17", "101", "in")]
    assert (inbound.total, inbound.answered, inbound.missed, inbound.talk_s) == (2, 1, 1, 60.0)
    assert rows[("2025-11-17", "101", "out")].total == 1
    assert rows[("2025-11-18", "102", "in")].missed == 1
