"""Following recorded and generated Asterisk sessions: one finished call each, with the right outcome."""

from __future__ import annotations

import random
from collections.abc import Callable
from datetime import datetime

import pytest

from crm_hub_plugins.telephony.asterisk import AsteriskCallTracker
from crm_hub_plugins.telephony.calls import CallRecord, RingingNotice
from crm_hub_plugins.telephony.sandbox import generate_call

from .conftest import AMI_SESSIONS, ami_session


def records(updates: list[object]) -> list[CallRecord]:
    return [u for u in updates if isinstance(u, CallRecord)]


def follow(name: str, clock: Callable[[], datetime]) -> CallRecord:
    tracker = AsteriskCallTracker(clock=clock)
    found = records(tracker.feed_all(ami_session(name)))
    assert len(found) == 1, found
    assert tracker.active_calls == 0
    return found[0]


def test_answered_internal_call_reports_caller_callee_and_talk_time(clock: Callable[[], datetime]) -> None:
    call = follow("simple_ab_success_a_hangup", clock)
    assert (call.direction, call.status, call.extension) == ("internal", "answered", "201")
    assert call.rang == ["202"]
    assert call.talk_s is not None and call.talk_s > 0
    assert call.ring_s is not None and call.ring_s > 0
    assert call.call_id == "195176c06ab8-1529936170.42"


def test_rejected_call_is_busy(clock: Callable[[], datetime]) -> None:
    call = follow("simple_ab_reject", clock)
    assert (call.status, call.talk_s, call.answered_at) == ("busy", 0.0, None)
    assert call.disconnect_reason == "17"


def test_caller_hanging_up_while_ringing_is_cancelled(clock: Callable[[], datetime]) -> None:
    call = follow("simple_ab_a_cancel", clock)
    assert call.status == "cancelled"
    assert call.answered_at is None


def test_queue_call_is_inbound_answered_by_the_agent_who_picked_up(clock: Callable[[], datetime]) -> None:
    call = follow("queue_queue_simple", clock)
    assert call.direction == "in"
    assert call.status == "answered"
    assert call.number is not None and call.number.raw == "+31150010001"
    assert call.extension == "150010002"
    assert call.rang == ["150010002", "150010003"]
    assert call.line_number == "+31150010004"


def test_blind_transfer_keeps_one_call_and_names_the_target(clock: Callable[[], datetime]) -> None:
    call = follow("xfer_blind_xfer_blind_abbcac", clock)
    assert (call.status, call.transferred_to, call.extension) == ("answered", "203", "201")


def test_click_to_dial_is_outbound_from_the_operator_to_the_world(clock: Callable[[], datetime]) -> None:
    call = follow("originate_ctd-account-world", clock)
    assert (call.direction, call.status, call.extension) == ("out", "answered", "201")
    assert call.number is not None and call.number.raw == "+31260010001"


@pytest.mark.parametrize("name", AMI_SESSIONS)
def test_same_session_twice_is_reported_once(name: str, clock: Callable[[], datetime]) -> None:
    tracker = AsteriskCallTracker(clock=clock)
    session = ami_session(name)
    first = records(tracker.feed_all(session))
    again = tracker.feed_all(session)
    assert len(first) == 1
    assert again == []


def test_inbound_ringing_pops_the_callers_number_for_the_operator(clock: Callable[[], datetime]) -> None:
    tracker = AsteriskCallTracker(clock=clock)
    updates = tracker.feed_all(ami_session("queue_queue_simple"))
    notices = [u for u in updates if isinstance(u, RingingNotice)]
    assert len(notices) == 1
    assert notices[0].direction == "in"
    assert notices[0].number is not None and notices[0].number.raw == "+31150010001"
    assert updates.index(notices[0]) < updates.index(records(updates)[0])


@pytest.mark.parametrize(
    ("kind", "status", "direction"),
    [
        ("answered", "answered", "in"),
        ("busy", "busy", "in"),
        ("no_answer", "no_answer", "in"),
        ("cancelled", "cancelled", "in"),
        ("rejected", "rejected", "in"),
        ("queue", "answered", "in"),
        ("transfer", "answered", "in"),
        ("outbound", "answered", "out"),
    ],
)
def test_generated_calls_have_the_expected_outcome(kind: str, status: str, direction: str) -> None:
    rng = random.Random(kind)
    events = generate_call(kind, rng=rng, start=1_763_362_800.0)  # type: ignore[arg-type]
    tracker = AsteriskCallTracker()
    updates = tracker.feed_all(events)
    [call] = records(updates)
    assert (call.status, call.direction) == (status, direction)
    assert call.number is not None and call.number.e164 is not None and call.number.e164.startswith("+79")
    assert call.extension == ("102" if kind == "transfer" else "101")
    if kind == "queue":
        assert call.queue == "support"
    if kind == "transfer":
        assert call.transferred_to == "102"
        assert call.operators == ["101", "102"], "the chain of operators who answered"
    if status == "answered":
        assert call.recording and call.recording.endswith(".wav")
        assert call.talk_s is not None and call.talk_s >= 15
    else:
        assert call.talk_s == 0.0


def test_durations_come_from_event_timestamps() -> None:
    events = generate_call("answered", rng=random.Random(1), start=1_763_362_800.0)
    [call] = records(AsteriskCallTracker().feed_all(events))
    assert call.ring_s == pytest.approx(6.5)
    assert call.started_at is not None and call.started_at.timestamp() == pytest.approx(1_763_362_800.0)


def test_unknown_and_malformed_events_are_skipped_without_losing_the_call(clock: Callable[[], datetime]) -> None:
    tracker = AsteriskCallTracker(clock=clock)
    session = ami_session("simple_ab_reject")
    noise: list[dict[str, str]] = [
        {"Event": "SomethingNew", "Foo": "bar"},
        {"Event": "Hangup"},
        {"Event": "Newchannel", "Linkedid": "x"},
        {"Event": "DialEnd", "Linkedid": "y", "DestUniqueid": "z"},
        {"Event": "OriginateResponse"},
        {"NoEvent": "at all"},
        {"Event": "Newstate", "Linkedid": "l", "Uniqueid": "u", "Channel": "PJSIP/1-1", "Timestamp": "not a number"},
    ]
    updates = tracker.feed_all(noise[:4] + session[:10] + noise[4:] + session[10:])
    assert [c.status for c in records(updates)] == ["busy"]
    assert tracker.ignored["SomethingNew"] == 1


def test_a_call_whose_hangup_was_lost_is_closed_when_stale(clock: Callable[[], datetime]) -> None:
    tracker = AsteriskCallTracker(clock=clock)
    events = generate_call("answered", rng=random.Random(3), start=1_763_362_800.0)
    assert records(tracker.feed_all(events[:-2])) == []
    later = datetime.fromtimestamp(1_763_362_800.0 + 5 * 3600).astimezone()
    [call] = tracker.expire(later)
    assert call.status == "answered"
    assert tracker.feed_all(events[-2:]) == []


def test_channel_listing_after_reconnect_closes_calls_that_ended_meanwhile() -> None:
    tracker = AsteriskCallTracker()
    gone = generate_call("answered", rng=random.Random(4), start=1_763_362_800.0)
    alive = generate_call("answered", rng=random.Random(5), start=1_763_362_800.0)
    tracker.feed_all(gone[:-2] + alive[:-2])
    tracker.start_listing()
    live_channel = {k: v for k, v in alive[0].items() if k != "Event"}
    updates = tracker.feed_all([{"Event": "CoreShowChannel", **live_channel}, {"Event": "CoreShowChannelsComplete"}])
    assert [c.call_id for c in records(updates)] == [gone[0]["Linkedid"]]
    assert tracker.active_calls == 1
    assert [c.call_id for c in records(tracker.feed_all(alive[-2:]))] == [alive[0]["Linkedid"]]


def test_failed_originate_is_reported_against_its_action_id() -> None:
    from crm_hub_plugins.telephony.calls import OriginateResult
    from crm_hub_plugins.telephony.sandbox import originate_events

    updates = AsteriskCallTracker().feed_all(
        originate_events("act-1", channel="PJSIP/101", exten="89161234567", answer=False)
    )
    [result] = [u for u in updates if isinstance(u, OriginateResult)]
    assert (result.action_id, result.success, result.status) == ("act-1", False, "no_answer")
