"""Property tests of the PBX parsers (Mango, Zadarma, the generic form, AMI): whatever a PBX or a stranger
sends, a parser never crashes, and every call it assembles becomes observations the core accepts."""

from __future__ import annotations

import contextlib
import json
import string
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from crm_hub_plugins.telephony.ami import AMIDecoder
from crm_hub_plugins.telephony.asterisk import AsteriskCallTracker
from crm_hub_plugins.telephony.calls import CallRecord, call_observations
from crm_hub_plugins.telephony.generic import GenericCallAssembler, GenericCallEvent
from crm_hub_plugins.telephony.mango import MangoCallAssembler, verify_mango_form
from crm_hub_plugins.telephony.zadarma import SIGNED_FIELDS, ZadarmaCallAssembler
from hub.core.errors import BadInput

from .conftest import ami_session, ticking_clock

FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# Values a PBX (or someone posing as one) may put anywhere: odd text, edge numbers, edge times.
EDGE_TEXT = st.sampled_from(
    ["", " ", "0", "-1", "1e400", "NaN", "Infinity", "\x00", "a\x00b", "x" * 300, "8 (000) 000-00-00",
     "79161234567", "+7 916 123-45-67", "Anonymous", "0001-01-01 00:00:00", "9999-12-31 23:59:59",
     "2025-11-17 10:00:00", "2025-02-30 10:00:00", "101", "я" * 50, "1700000000", str(2**63), str(-(2**63) - 1)]
)  # fmt: skip
PHONE = st.sampled_from(["79161234567", "+7 916 123-45-67", "8 (916) 765-43-21", "8 (000) 000-00-00", "80000000000"])
TEXT = st.one_of(EDGE_TEXT, PHONE, st.text(max_size=40))
NUMBER = st.one_of(
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([0, 1, 1399906976, 253402300799, 2**63, -(2**63)]),
)
SCALAR = st.one_of(st.none(), st.booleans(), TEXT, NUMBER)
JSONISH = st.recursive(
    SCALAR, lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(TEXT, inner, max_size=3)), max_leaves=8
)


def assert_core_accepts(updates: list[Any]) -> None:
    """Every call a parser assembled turns into observations, into nothing, or into a clear refusal (BadInput);
    never into another error. No observation carries a phone number that cannot be real."""
    for update in updates:
        if isinstance(update, CallRecord):
            try:
                observations = call_observations(update)
            except BadInput:
                continue
            for obs in observations:
                assert all(phone != "+80000000000" for phone in obs.client.phones)


# --- Mango ---------------------------------------------------------------------------------------------------

MANGO_KEYS = ["entry_id", "call_id", "seq", "call_state", "timestamp", "from", "to", "call_direction",
              "entry_result", "create_time", "talk_time", "end_time", "recording_id", "line_number",
              "disconnect_reason", "command_id"]  # fmt: skip
PARTY = st.dictionaries(st.sampled_from(["extension", "number", "acd_group", "line_number"]), SCALAR, max_size=4)
MANGO_PAYLOAD = st.fixed_dictionaries(
    {"entry_id": st.one_of(TEXT, NUMBER)},
    optional={key: st.one_of(SCALAR, PARTY, JSONISH) for key in MANGO_KEYS if key != "entry_id"},
)


LONG_ID_SUMMARY = {
    "entry_id": "x" * 300,
    "from": {"number": "79161234567"},
    "to": {"extension": "1"},
    "call_direction": 1,
}
ENDS_BEFORE_START = {"entry_id": "e", "from": {"number": "79161234567"}, "call_direction": 1,
                     "create_time": 1399906976, "end_time": 1399906000, "to": {"extension": "1" * 300}}  # fmt: skip


@FUZZ
@given(
    events=st.lists(st.tuples(st.sampled_from(["call", "summary", "recording", "other"]), MANGO_PAYLOAD), max_size=6)
)
@example(events=[("summary", LONG_ID_SUMMARY)])
@example(events=[("summary", ENDS_BEFORE_START)])
@example(events=[("summary", {**ENDS_BEFORE_START, "create_time": 2**63, "end_time": "1e400"})])
def test_mango_assembler_never_crashes_and_its_calls_are_accepted(events: list[tuple[str, dict[str, Any]]]) -> None:
    assembler = MangoCallAssembler(account="vpbx")
    for kind, payload in events:
        assert_core_accepts(assembler.feed(kind, payload))


@FUZZ
@given(form=st.dictionaries(st.sampled_from(["vpbx_api_key", "sign", "json", "x"]), TEXT, max_size=4))
def test_mango_form_verification_only_ever_refuses_with_bad_input(form: dict[str, str]) -> None:
    with contextlib.suppress(BadInput):
        verify_mango_form(form, api_key="vpbx-key-1", api_salt="vpbx-salt-1")


def test_mango_json_nested_deep_is_refused_not_a_crash() -> None:
    from crm_hub_plugins.telephony.mango import signed_form
    from hub.core.jsontext import BadJSON

    form = signed_form("[" * 50_000 + "]" * 50_000, api_key="k", api_salt="s")
    with pytest.raises(BadJSON):
        verify_mango_form(form, api_key="k", api_salt="s")


# --- Zadarma -------------------------------------------------------------------------------------------------

ZADARMA_KEYS = ["caller_id", "called_did", "call_start", "internal", "destination", "disposition", "duration",
                "status_code", "is_recorded", "call_id_with_rec", "pbx_call_id"]  # fmt: skip
ZADARMA_FORM = st.fixed_dictionaries(
    {"event": st.sampled_from([*SIGNED_FIELDS, "NOTIFY_SMS", ""]), "pbx_call_id": st.one_of(TEXT, st.just("in_1"))},
    optional={key: TEXT for key in ZADARMA_KEYS if key != "pbx_call_id"},
)


@FUZZ
@given(forms=st.lists(ZADARMA_FORM, max_size=6))
@example(forms=[{"event": "NOTIFY_END", "pbx_call_id": "x" * 300, "caller_id": "79161234567", "disposition": "cancel"}])
@example(
    forms=[
        {"event": "NOTIFY_END", "pbx_call_id": "in", "caller_id": "79161234567", "call_start": "9999-12-31 23:59:59"}
    ]
)
@example(forms=[{"event": "NOTIFY_END", "pbx_call_id": "in", "caller_id": "79161234567", "duration": "1e400",
                 "disposition": "answered"}])  # fmt: skip
def test_zadarma_assembler_never_crashes_and_its_calls_are_accepted(forms: list[dict[str, str]]) -> None:
    assembler = ZadarmaCallAssembler(account="zd", clock=ticking_clock())
    for form in forms:
        assert_core_accepts(assembler.feed(form))


# --- the generic form ------------------------------------------------------------------------------------------

TIME = st.one_of(
    st.datetimes(timezones=st.sampled_from([UTC, None])).map(lambda d: d.isoformat()),
    st.sampled_from(["0001-01-01T00:00:00+05:00", "9999-12-31T23:59:59-05:00", "2025-11-17T10:00:00+03:00"]),
    TEXT,
    NUMBER,
)
GENERIC_EVENT = st.fixed_dictionaries(
    {
        "call_id": st.one_of(TEXT, NUMBER),
        "event": st.sampled_from(["ringing", "answered", "ended", "other"]),
        "direction": st.sampled_from(["in", "out", "internal", "sideways"]),
    },
    optional={
        "from": st.one_of(TEXT, NUMBER), "to": st.one_of(TEXT, NUMBER), "extension": st.one_of(TEXT, NUMBER),
        "started_at": TIME, "answered_at": TIME, "ended_at": TIME,
        "status": st.sampled_from(["answered", "missed", "busy", "weird", None]),
        "duration_s": st.one_of(NUMBER, TEXT), "recording_url": TEXT, "queue": TEXT, "transferred_to": TEXT,
        "line_number": TEXT, "account": TEXT, "extra": JSONISH,
    },
)  # fmt: skip


@FUZZ
@given(events=st.lists(GENERIC_EVENT, max_size=4))
def test_generic_events_are_refused_or_assembled_into_calls_the_core_accepts(events: list[dict[str, Any]]) -> None:
    assembler = GenericCallAssembler()
    for data in events:
        try:
            event = GenericCallEvent.model_validate(data)
        except ValidationError:
            continue
        json.dumps(event.model_dump(mode="json", by_alias=True, exclude_none=True), allow_nan=False)
        assert_core_accepts(assembler.feed(event))


# --- AMI -------------------------------------------------------------------------------------------------------

AMI_LINE = st.one_of(
    st.builds(lambda k, v: f"{k}: {v}", st.sampled_from(["Event", "Response", "Action", "Linkedid", "Uniqueid",
              "Channel", "CallerIDNum", "Output", "Bad Key", ""]), TEXT),
    TEXT,
)  # fmt: skip
AMI_STREAM = st.lists(
    st.one_of(
        st.lists(AMI_LINE, max_size=5).map(lambda lines: ("\r\n".join(lines) + "\r\n\r\n").encode()),
        st.binary(max_size=60),
        st.sampled_from([b"Asterisk Call Manager/5.0.1\r\n", b"Response: Follows\r\n", b"--END COMMAND--\r\n\r\n"]),
    ),
    max_size=8,
)


@FUZZ
@given(chunks=AMI_STREAM, cuts=st.lists(st.integers(min_value=0, max_value=400), max_size=5))
def test_ami_decoder_never_crashes_on_any_bytes_however_split(chunks: list[bytes], cuts: list[int]) -> None:
    stream = b"".join(chunks)
    pieces, start = [], 0
    for cut in sorted(cuts):
        pieces.append(stream[start:cut])
        start = max(start, cut)
    pieces.append(stream[start:])
    decoder = AMIDecoder()
    for piece in pieces:
        for packet in decoder.feed(piece):
            assert {"Event", "Response", "Action"} & packet.keys()
            assert all(isinstance(k, str) and isinstance(v, str) for k, v in packet.items())


AMI_FIELDS = ["Event", "Channel", "Linkedid", "Uniqueid", "CallerIDNum", "CallerIDName", "ConnectedLineNum",
              "Exten", "Context", "ChannelStateDesc", "DestChannel", "DestLinkedid", "DestUniqueid",
              "DialStatus", "Cause", "Variable", "Value", "Queue", "Interface", "Timestamp", "ActionID",
              "Response", "Reason"]  # fmt: skip
AMI_EVENT = st.fixed_dictionaries(
    {"Event": st.sampled_from(["Newchannel", "Newstate", "Hangup", "DialBegin", "DialEnd", "VarSet", "QueueCallerJoin",
                               "QueueCallerAbandon", "AgentCalled", "AgentConnect", "BlindTransfer",
                               "AttendedTransfer", "OriginateResponse", "CoreShowChannel",
                               "CoreShowChannelsComplete", "Other"]),
     "Linkedid": st.sampled_from(["1.1", "1.2", ""])},
    optional={key: TEXT for key in AMI_FIELDS if key not in ("Event", "Linkedid")},
)  # fmt: skip


@FUZZ
@given(events=st.lists(AMI_EVENT, max_size=10))
def test_asterisk_tracker_never_crashes_on_odd_events_and_its_calls_are_accepted(events: list[dict[str, str]]) -> None:
    tracker = AsteriskCallTracker(clock=ticking_clock())
    for event in [*ami_session("simple_ab_success_a_hangup")[:3], *events]:
        assert_core_accepts(tracker.feed(event))
    assert_core_accepts(tracker.expire(datetime(2100, 1, 1, tzinfo=UTC)))


def test_printable_strategy_is_bounded() -> None:
    assert len(string.printable) < 200  # keeps the strategies above small: each example is a few hundred bytes
