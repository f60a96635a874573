"""Call flows a manager sees: one call per outside party and conversation, answered only if someone talked to
the customer, the operator is who answered for the company (never a trunk), transfers keep their chain.

Constructed sessions (``crm_hub_plugins.telephony.flows``, modelled on the recorded ones) and the recorded cacofonisk
sessions with the outcomes that library's own tests give, followed by the tracker and replayed over real TCP
to a running hub (writes split at every byte offset, a dropped connection mid-call).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import datetime
from typing import Any

import pytest
from fastapi.testclient import TestClient

from crm_hub_plugins.telephony.ami import AMIDecoder
from crm_hub_plugins.telephony.asterisk import AsteriskCallTracker
from crm_hub_plugins.telephony.calls import CallRecord
from crm_hub_plugins.telephony.flows import Expected, Outcome, Session, expected_outcome, flows, named_caller, outcomes
from crm_hub_plugins.telephony.runtime import telephony
from crm_hub_plugins.telephony.sandbox import AMISandbox, encode_packet
from hub.core.events import ClientObservation, SourceRef
from hub.core.hub import Hub
from hub.web.app import create_app
from tests.conftest import wait_for

from .conftest import AMI_SESSIONS, FIXTURES, ami_session, ami_settings, calls_on_timeline

FLOWS = {flow.name: flow for flow in flows()}
RECORDED: dict[str, list[dict[str, Any]]] = json.loads((FIXTURES / "ami" / "expected.json").read_text())


def recorded_expected(name: str) -> dict[str, Outcome]:
    found = {}
    for e in RECORDED[name]:
        outcome = Outcome(e["calls"], e["answered"], e["operator"], tuple(e["operators"]), e["direction"])
        found[e["number"]] = outcome
    return found


def expected_of(items: tuple[Expected, ...]) -> dict[str, Outcome]:
    return {e.number: expected_outcome(e) for e in items}


def records(updates: Sequence[object]) -> list[CallRecord]:
    return [u for u in updates if isinstance(u, CallRecord)]


@pytest.mark.parametrize("name", sorted(FLOWS))
def test_constructed_flow_gives_the_expected_calls(name: str) -> None:
    flow = FLOWS[name]
    tracker = AsteriskCallTracker()
    assert outcomes(records(tracker.feed_all(flow.events))) == expected_of(flow.expected)
    assert tracker.active_calls == 0


@pytest.mark.parametrize("name", AMI_SESSIONS)
def test_recorded_session_gives_what_cacofonisk_expects(name: str, clock: Callable[[], datetime]) -> None:
    tracker = AsteriskCallTracker(clock=clock)
    assert outcomes(records(tracker.feed_all(ami_session(name)))) == recorded_expected(name)
    assert tracker.active_calls == 0


def test_acceptance_prompt_answered_by_the_mobile_network_is_not_an_answered_call() -> None:
    cases = [("acceptance_accepted", True), ("acceptance_rejected", False), ("acceptance_timeout", False)]
    for name, answered in cases:
        [call] = records(AsteriskCallTracker().feed_all(FLOWS[name].events))
        assert call.answered is answered, name
        assert call.talk_s == (40.0 if answered else 0.0)


def test_operator_is_never_the_trunk() -> None:
    for flow in FLOWS.values():
        for call in records(AsteriskCallTracker().feed_all(flow.events)):
            assert call.extension != "trunk" and "trunk" not in call.operators and "trunk" not in call.rang


def test_transfer_chain_is_recorded_and_the_last_operator_is_the_operator() -> None:
    [call] = records(AsteriskCallTracker().feed_all(FLOWS["attended_transfer"].events))
    assert (call.extension, call.operators, call.transferred_to) == ("102", ["101", "102"], "102")
    assert call.talk_s is not None and call.talk_s > 60, "the conversation goes on after the transfer"


def test_without_bridge_events_an_answered_dial_still_counts() -> None:
    """Managers filtered to drop BridgeEnter (or Asterisk 11): the dial result stands in."""
    events = [e for e in FLOWS["queue_answered"].events if not e["Event"].startswith("Bridge")]
    [call] = records(AsteriskCallTracker().feed_all(events))
    assert (call.status, call.extension) == ("answered", "102")


# --- over TCP, into a hub --------------------------------------------------------------------------------------


def replayed(hub: Hub) -> dict[str, Outcome]:
    """The same per-number summary, read back from the hub's timeline."""
    by_number: dict[str, list[Any]] = {}
    for item in calls_on_timeline(hub):
        by_number.setdefault(item.fields["number_raw"], []).append(item)
    found = {}
    for number, items in by_number.items():
        items.sort(key=lambda i: i.id)
        last = items[-1].fields
        chain = tuple(last["operators"].split(" → ")) if last.get("operators") else ()
        client = hub.get_client(items[-1].client_id)
        found[number] = Outcome(
            calls=len(items),
            answered=sum(i.fields["status"] == "answered" for i in items),
            operator=last.get("operator"),
            operators=chain or ((last["operator"],) if last.get("operator") and last["status"] == "answered" else ()),
            direction=last["direction"],
            name=client.name if client is not None else None,
        )
    return found


def all_sessions() -> tuple[list[dict[str, str]], dict[str, Outcome]]:
    """Every session in one stream, and what each outside number must have after it (a number that two
    sessions share adds up their calls; the later call names the operator)."""
    events: list[dict[str, str]] = []
    expected: dict[str, Outcome] = {}

    def add(outcomes: dict[str, Outcome]) -> None:
        for number, new in outcomes.items():
            old = expected.get(number)
            if old is not None:
                new = replace(new, calls=old.calls + new.calls, answered=old.answered + new.answered)
            expected[number] = new

    for flow in FLOWS.values():
        events += flow.events
        add(expected_of(flow.expected))
    for name in AMI_SESSIONS:
        events += ami_session(name)
        add(recorded_expected(name))
    return events, expected


def test_every_flow_replayed_over_tcp_with_split_writes_and_a_drop(telephony_hub: Callable[..., Hub]) -> None:
    events, expected = all_sessions()
    with AMISandbox(chunk_size=61) as sandbox:  # writes cut at ever-changing offsets, inside characters too
        hub = telephony_hub(**ami_settings(sandbox))
        hub.start("all")
        assert sandbox.wait_for_login()
        half = len(events) // 2
        sandbox.send_events(events, drop_after=half)  # the PBX drops the connection in the middle of a call
        wait_for(lambda: sandbox.logins >= 2, timeout=60)  # the listener reconnects
        sandbox.send_events(events[half - 40 : half])  # Asterisk's buffer repeats what was in flight
        wait_for(lambda: sandbox.pending() == 0 and len(replayed(hub)) == len(expected), timeout=60)
        hub.wait_idle()
        got = replayed(hub)
    assert got == expected


def test_cyrillic_caller_name_survives_bytes_split_at_every_offset() -> None:
    events = FLOWS["caller_name_cyrillic"].events
    stream = b"Asterisk Call Manager/5.0.1\r\n" + b"".join(encode_packet(e) for e in events)
    for offset in range(1, 400):
        decoder = AMIDecoder()
        packets = decoder.feed(stream[:offset]) + decoder.feed(stream[offset:])
        assert packets == events, offset
    one_by_one = AMIDecoder()
    assert [p for i in range(len(stream)) for p in one_by_one.feed(stream[i : i + 1])] == events


def test_unknown_caller_is_named_from_the_caller_id_but_a_known_client_keeps_its_name(
    telephony_hub: Callable[..., Hub],
) -> None:
    hub = telephony_hub()
    known = "79160000001"
    hub.ingest(ClientObservation(source=SourceRef(system="crm", entity="contact", id="1"), name="Анна Смирнова",
                                 phones=[known]))  # fmt: skip
    intake = telephony(hub).intake
    for name, number in [("Пётр Иванов", "79160000002"), ("Вася с АТС", known), ("<unknown>", "79160000003"),
                         ("79160000004", "79160000004"), ("12345", "79160000005")]:  # fmt: skip
        [call] = records(AsteriskCallTracker().feed_all(named_caller(name, number)))
        intake.apply(replace(call, call_id=f"call-{number}"))
    names = {n: hub.find_clients(phone="+" + n)[0].name for n in ("79160000001", "79160000002", "79160000003")}
    assert names == {"79160000001": "Анна Смирнова", "79160000002": "Пётр Иванов", "79160000003": None}
    assert hub.find_clients(phone="+79160000004")[0].name is None
    assert hub.find_clients(phone="+79160000005")[0].name is None


def test_a_caller_id_name_fills_an_empty_name_and_gives_way_to_any_real_one(telephony_hub: Callable[..., Hub]) -> None:
    hub = telephony_hub()
    intake = telephony(hub).intake
    number = "79160000007"
    [nameless] = records(AsteriskCallTracker().feed_all(named_caller("<unknown>", number)))
    intake.apply(nameless)
    assert hub.find_clients(phone="+" + number)[0].name is None
    [named] = records(AsteriskCallTracker().feed_all(named_caller("Ольга Лебедева", number)))
    intake.apply(replace(named, call_id="second-call"))  # a later call whose trunk sends a name
    assert hub.find_clients(phone="+" + number)[0].name == "Ольга Лебедева"
    hub.ingest(ClientObservation(source=SourceRef(system="crm", entity="contact", id="7"), name="Лебедева О. П.",
                                 phones=[number], observed_at=datetime(2020, 1, 1).astimezone()))  # fmt: skip
    assert hub.find_clients(phone="+" + number)[0].name == "Лебедева О. П.", "a CRM name outranks a PBX guess"


def test_call_stats_count_these_outcomes(telephony_hub: Callable[..., Hub]) -> None:
    hub = telephony_hub()
    hub.prepare()
    intake = telephony(hub).intake
    for flow in FLOWS.values():
        for call in records(AsteriskCallTracker().feed_all(flow.events)):
            intake.apply(call)
    report = TestClient(create_app(hub), base_url="http://127.0.0.1").get(
        "/api/calls/stats", params={"since": "2025-11-17", "until": "2025-11-17"}
    )
    assert report.status_code == 200
    expected = [e for flow in FLOWS.values() for e in flow.expected]
    totals = report.json()["totals"]
    assert (totals["calls"], totals["answered"]) == (len(expected), sum(e.answered for e in expected))
    answered_by: dict[str, int] = {}
    for row in report.json()["rows"]:
        assert row["operator"] != "trunk"
        if row["answered"]:
            answered_by[row["operator"]] = answered_by.get(row["operator"], 0) + row["answered"]
    wanted: dict[str, int] = {}
    for e in expected:
        if e.answered and e.operator:
            wanted[e.operator] = wanted.get(e.operator, 0) + e.answered
    assert answered_by == wanted


def test_outbound_call_through_a_trunk_whose_dial_string_hides_the_number() -> None:
    s = Session()
    phone = s.new("PJSIP/101", "101", exten="89161234567")
    s.state(phone, "Ring")
    trunk = s.new("PJSIP/mts-trunk", "89161234567", linkedid=phone.linkedid, exten="89161234567")
    s.emit("DialBegin", **phone.fields(), **trunk.fields("Dest"), DialString="mts-trunk")
    s.state(trunk, "Ringing")
    s.wait(5)
    s.answer(phone, trunk)
    bridge = s.bridge(phone, trunk)
    s.wait(20)
    s.hangup(trunk, phone, bridge=bridge)
    [call] = records(AsteriskCallTracker().feed_all(s.events))
    assert call.direction == "out" and call.number is not None and call.number.e164 == "+79161234567"
    assert (call.status, call.extension, call.talk_s) == ("answered", "101", 20.0)


def test_live_call_stays_ringing_while_the_acceptance_prompt_plays(telephony_hub: Callable[..., Hub]) -> None:
    """The mobile network answers to play "press 1": the live list must not show the call as answered yet."""
    events = FLOWS["acceptance_accepted"].events
    number = "+" + FLOWS["acceptance_accepted"].expected[0].number
    prompt = next(i for i, e in enumerate(events) if e["Event"] == "BridgeEnter") + 2  # the prompt's bridge is up
    last_bridge = max(i for i, e in enumerate(events) if e["Event"] == "BridgeEnter") + 1  # accepted and joined
    # Another call starts ringing after the prompt: once it is listed, everything before it has been read.
    marker = FLOWS["queue_answered"].events
    marker_rings = next(i for i, e in enumerate(marker) if e["Event"] == "AgentCalled") + 2
    with AMISandbox() as sandbox:
        hub = telephony_hub(**ami_settings(sandbox))
        hub.start("all")
        assert sandbox.wait_for_login()
        api = TestClient(create_app(hub), base_url="http://127.0.0.1")

        def live() -> dict[str, Any]:
            return {c["number"]: c for c in api.get("/api/calls/live").json()["items"]}

        sandbox.send_events(events[:prompt] + marker[:marker_rings])
        calls = wait_for(lambda: len(c := live()) == 2 and c)
        assert calls[number]["state"] == "ringing"
        sandbox.send_events(events[prompt:last_bridge])
        wait_for(lambda: live()[number]["state"] == "active")
        assert live()[number]["extension"] == "79035556677", "the mobile user who accepted"
        sandbox.send_events(events[last_bridge:] + marker[marker_rings:])
        wait_for(lambda: live() == {})
