"""Mango Office: signatures on the raw json, events in any order into one call, and the callback command."""

from __future__ import annotations

import json
import random

import httpx
import pytest

from crm_hub_plugins.telephony.calls import CallRecord, RingingNotice
from crm_hub_plugins.telephony.mango import MangoCallAssembler, callback_request, send_callback, verify_mango_form
from crm_hub_plugins.telephony.sandbox import MangoSender, create_app
from hub.core.errors import BadInput, ExternalAPIError
from hub.testing import serve_asgi

from .conftest import FIXTURES

KEY, SALT = "vpbx-key-1", "vpbx-salt-1"
MANGO = FIXTURES / "mango"


def raw(name: str) -> str:
    return (MANGO / name).read_text(encoding="utf-8").strip()


def outgoing_legs() -> list[str]:
    return [line for line in raw("events_call_outgoing_sequence.jsonl").splitlines() if line.strip()]


@pytest.mark.parametrize(
    "name", ["events_call_real_capture.json", "events_summary_inbound_answered.json", "events_recording_started.json"]
)
def test_signed_fixture_is_accepted_exactly_as_sent(name: str) -> None:
    form = MangoSender(KEY, SALT).form(raw(name))
    assert form["json"] == raw(name)
    assert verify_mango_form(form, api_key=KEY, api_salt=SALT) == json.loads(raw(name))


def test_signature_is_checked_on_the_raw_json_not_a_reserialisation() -> None:
    form = MangoSender(KEY, SALT).form(raw("events_summary_inbound_answered.json"))
    form["json"] = json.dumps(json.loads(form["json"]))
    with pytest.raises(BadInput, match="signature"):
        verify_mango_form(form, api_key=KEY, api_salt=SALT)


def test_wrong_salt_or_key_is_rejected_without_echoing_the_salt() -> None:
    form = MangoSender(KEY, "another-salt").form(raw("events_call_real_capture.json"))
    with pytest.raises(BadInput) as error:
        verify_mango_form(form, api_key=KEY, api_salt=SALT)
    assert SALT not in str(error.value)
    with pytest.raises(BadInput, match="API key"):
        verify_mango_form({**MangoSender("x", SALT).form("{}")}, api_key=KEY, api_salt=SALT)


def test_summary_makes_the_inbound_answered_call() -> None:
    [call] = MangoCallAssembler().feed("summary", json.loads(raw("events_summary_inbound_answered.json")))
    assert isinstance(call, CallRecord)
    assert (call.call_id, call.direction, call.status, call.extension) == ("232wc3e3w3s222", "in", "answered", "123")
    assert (call.ring_s, call.talk_s) == (4.0, 10.0)
    assert call.number is not None and call.number.raw == "7800123635242"
    assert call.disconnect_reason == "1100"


def test_integers_from_real_captures_are_read_like_strings() -> None:
    assembler = MangoCallAssembler()
    capture = json.loads(raw("events_call_real_capture.json"))
    assert isinstance(capture["seq"], int) and isinstance(capture["timestamp"], int)
    assert assembler.feed("call", capture) == []  # still in the IVR: no operator rings yet
    ringing = {**capture, "seq": 2, "location": "abonent", "to": {"extension": 101, "number": 74994509495}}
    [notice] = assembler.feed("call", ringing)
    assert isinstance(notice, RingingNotice)
    assert (notice.direction, notice.extension) == ("in", "101")
    assert notice.number is not None and notice.number.e164 == "+79997356761"
    summary = {
        "entry_id": capture["entry_id"],
        "call_direction": 1,
        "from": {"number": 79997356761},
        "to": {"extension": 101},
        "line_number": 74994509495,
        "create_time": 1513707786,
        "forward_time": 1513707790,
        "talk_time": 0,
        "end_time": 1513707800,
        "entry_result": 0,
        "disconnect_reason": 1110,
    }
    [call] = assembler.feed("summary", summary)
    assert isinstance(call, CallRecord)
    assert (call.status, call.extension, call.line_number, call.ring_s) == ("missed", "101", "74994509495", 14.0)


def test_outgoing_legs_pop_once_and_summary_in_any_order_gives_one_record() -> None:
    summary = {
        "entry_id": "232wc3e3w3s222",
        "call_direction": "2",
        "from": {"extension": "1234", "number": "74955404444"},
        "to": {"number": "79161234567"},
        "create_time": "1399906976",
        "forward_time": "0",
        "talk_time": "1399906978",
        "end_time": "1399906990",
        "entry_result": "1",
        "disconnect_reason": "1120",
    }
    recording = json.loads(raw("events_recording_started.json"))
    messages = [("call", json.loads(leg)) for leg in outgoing_legs()] + [("recording", recording), ("summary", summary)]
    for seed in range(5):
        shuffled = messages * 2
        random.Random(seed).shuffle(shuffled)
        assembler = MangoCallAssembler()
        updates = [u for kind, payload in shuffled for u in assembler.feed(kind, payload)]
        records = [u for u in updates if isinstance(u, CallRecord)]
        assert {r.call_id for r in records} == {"232wc3e3w3s222"}
        final = records[-1]
        assert (final.direction, final.status, final.extension, final.talk_s) == ("out", "answered", "1234", 12.0)
        assert final.recording == "r100:777:500:256"
        assert len(records) <= 2  # the summary, and once more if the recording came after it


def test_callback_command_reaches_the_emulated_vpbx_signed() -> None:
    app = create_app(mango_api_key=KEY, mango_api_salt=SALT)
    with serve_asgi(app) as base, httpx.Client() as http:
        request = callback_request(
            api_url=f"{base}/vpbx/",
            api_key=KEY,
            api_salt=SALT,
            extension="1234",
            to_number="74955404444",
            command_id="cmd.1",
        )
        assert SALT not in repr(request)
        assert send_callback(http, request) == "cmd.1"
        forged = callback_request(
            api_url=f"{base}/vpbx/", api_key=KEY, api_salt="bad", extension="1234", to_number="74955404444"
        )
        with pytest.raises(ExternalAPIError, match="refused"):
            send_callback(http, forged)
    fixture = json.loads(raw("commands_callback_request.json"))
    assert app.state.mango_commands == [{**fixture, "command_id": "cmd.1"}]
