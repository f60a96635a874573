"""Mango Office and Zadarma calls follow the same outcome rules as Asterisk: answered only when an employee
talked to the customer, the operator is the last one who did, a transfer keeps its chain, and a recording that
arrives minutes later lands on the same timeline entry."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from fastapi.testclient import TestClient

from crm_hub_plugins.telephony.calls import CallRecord
from crm_hub_plugins.telephony.mango import MangoCallAssembler
from crm_hub_plugins.telephony.sandbox import MangoSender, ZadarmaSender
from crm_hub_plugins.telephony.zadarma import ZadarmaCallAssembler
from hub.core.hub import Hub
from hub.web.app import create_app
from tests.conftest import wait_for

from .conftest import MANGO_KEY, MANGO_SALT, ZADARMA_SECRET, calls_on_timeline

CUSTOMER = "79161234567"
LINE = "74951234567"


def mango_leg(
    call_id: str, seq: int, state: str, at: int, to_ext: str, *, from_ext: str | None = None
) -> dict[str, Any]:
    source = {"extension": from_ext} if from_ext else {"number": CUSTOMER}
    return {"entry_id": "entry-1", "call_id": call_id, "timestamp": at, "seq": seq, "call_state": state,
            "location": "abonent", "from": source, "to": {"extension": to_ext, "line_number": LINE}}  # fmt: skip


def mango_summary(result: int, first_ext: str) -> dict[str, Any]:
    return {"entry_id": "entry-1", "call_direction": 1, "from": {"number": CUSTOMER},
            "to": {"extension": first_ext, "number": LINE}, "line_number": LINE, "create_time": 1763362800,
            "forward_time": 1763362802, "talk_time": 1763362806 if result else 0, "end_time": 1763362900,
            "entry_result": result, "disconnect_reason": 1110}  # fmt: skip


def mango_call(events: list[tuple[str, dict[str, Any]]]) -> CallRecord:
    assembler = MangoCallAssembler()
    [record] = [u for kind, payload in events for u in assembler.feed(kind, payload) if isinstance(u, CallRecord)]
    return record


def test_mango_attended_transfer_names_the_last_employee_and_keeps_the_chain() -> None:
    call = mango_call(
        [
            ("call", mango_leg("leg-1", 1, "Appeared", 1763362801, "101")),
            ("call", mango_leg("leg-1", 2, "Connected", 1763362806, "101")),
            ("call", mango_leg("consult", 1, "Appeared", 1763362830, "102", from_ext="101")),
            ("call", mango_leg("consult", 2, "Connected", 1763362833, "102", from_ext="101")),
            ("call", mango_leg("leg-2", 1, "Connected", 1763362840, "102")),
            ("call", mango_leg("leg-1", 3, "Disconnected", 1763362840, "101")),
            ("summary", mango_summary(1, "101")),
        ]
    )
    assert (call.status, call.extension, call.operators, call.transferred_to) == (
        "answered", "102", ["101", "102"], "102"
    )  # fmt: skip


def test_mango_call_that_rang_two_employees_and_nobody_answered_is_missed() -> None:
    call = mango_call(
        [
            ("call", mango_leg("leg-1", 1, "Appeared", 1763362801, "101")),
            ("call", mango_leg("leg-2", 1, "Appeared", 1763362801, "102")),
            ("call", mango_leg("leg-1", 2, "Disconnected", 1763362830, "101")),
            ("call", mango_leg("leg-2", 2, "Disconnected", 1763362830, "102")),
            ("summary", mango_summary(0, "101")),
        ]
    )
    assert (call.status, call.operators, call.answered_at, call.talk_s) == ("missed", [], None, 0.0)


# Zadarma signs call_start (Moscow time by default) and the hub refuses notifications of long ago.
CALL_START = (
    (datetime.now(UTC) - timedelta(minutes=5)).astimezone(ZoneInfo("Europe/Moscow")).strftime("%Y-%m-%d %H:%M:%S")
)


def zadarma_form(event: str, **fields: str) -> dict[str, str]:
    return {"event": event, "pbx_call_id": "in_1", "call_start": CALL_START, "caller_id": CUSTOMER,
            "called_did": LINE, **fields}  # fmt: skip


def test_zadarma_transfer_answered_again_by_another_extension_is_one_call_with_a_chain() -> None:
    assembler = ZadarmaCallAssembler()
    forms = [
        zadarma_form("NOTIFY_START"),
        zadarma_form("NOTIFY_INTERNAL", internal="101"),
        zadarma_form("NOTIFY_ANSWER", internal="101", destination="101"),
        zadarma_form("NOTIFY_ANSWER", internal="101", destination="101"),  # a replay
        zadarma_form("NOTIFY_INTERNAL", internal="102"),
        zadarma_form("NOTIFY_ANSWER", internal="102", destination="102"),  # the transfer target answers
        zadarma_form("NOTIFY_END", internal="102", duration="95", disposition="answered", status_code="16"),
    ]
    [call] = [u for f in forms for u in assembler.feed(f) if isinstance(u, CallRecord)]
    assert (call.status, call.extension, call.operators, call.transferred_to) == (
        "answered", "102", ["101", "102"], "102"
    )  # fmt: skip
    # The replayed answer, and the second NOTIFY_INTERNAL (its signed fields do not name the extension).
    assert assembler.duplicates == 2


def test_zadarma_call_nobody_answered_names_no_chain() -> None:
    assembler = ZadarmaCallAssembler()
    forms = [
        zadarma_form("NOTIFY_START"),
        zadarma_form("NOTIFY_INTERNAL", internal="101"),
        zadarma_form("NOTIFY_END", internal="101", duration="0", disposition="no answer", status_code="19"),
    ]
    [call] = [u for f in forms for u in assembler.feed(f) if isinstance(u, CallRecord)]
    assert (call.status, call.operators, call.talk_s) == ("no_answer", [], 0.0)


def test_recordings_arriving_after_the_call_attach_to_its_one_timeline_entry(telephony_hub: Callable[..., Hub]) -> None:
    hub = telephony_hub()
    hub.start("all")
    client = TestClient(create_app(hub), base_url="http://127.0.0.1")
    mango = MangoSender(MANGO_KEY, MANGO_SALT)
    for kind, payload in [("call", mango_leg("leg-1", 2, "Connected", 1763362806, "101")),
                          ("summary", mango_summary(1, "101"))]:  # fmt: skip
        assert client.post(f"/webhooks/telephony/mango/events/{kind}", data=mango.form(payload)).status_code == 200
    zadarma = ZadarmaSender(ZADARMA_SECRET)
    for form in [zadarma_form("NOTIFY_START", pbx_call_id="zd-1"),
                 zadarma_form("NOTIFY_END", pbx_call_id="zd-1", internal="103", duration="40",
                              disposition="answered", is_recorded="0")]:  # fmt: skip
        body, headers = zadarma.signed(form)
        assert client.post("/webhooks/telephony/zadarma", data=body, headers=headers).status_code == 200
    first = wait_for(lambda: (c := calls_on_timeline(hub)) and len(c) == 2 and c)
    assert all("recording" not in c.fields for c in first)
    # Minutes later, the PBX reports the recordings.
    recording = {"entry_id": "entry-1", "call_id": "leg-1", "recording_id": "rec-777", "recording_state": "Completed",
                 "seq": 3, "timestamp": 1763363100, "extension": "101"}  # fmt: skip
    assert client.post("/webhooks/telephony/mango/events/recording", data=mango.form(recording)).status_code == 200
    body, headers = zadarma.signed({"event": "NOTIFY_RECORD", "pbx_call_id": "zd-1", "call_id_with_rec": "zd-rec-1"})
    assert client.post("/webhooks/telephony/zadarma", data=body, headers=headers).status_code == 200

    def recorded() -> list[Any] | None:
        calls = calls_on_timeline(hub)
        return calls if all(c.fields.get("recording") for c in calls) else None

    calls = wait_for(recorded)
    assert sorted(c.id for c in calls) == sorted(c.id for c in first), "the same entries, no new ones"
    assert {c.source.system: c.fields["recording"] for c in calls} == {"mango": "rec-777", "zadarma": "zd-rec-1"}
    assert {c.source.system: c.fields["operator"] for c in calls} == {"mango": "101", "zadarma": "103"}
    assert json.dumps([c.fields for c in calls], ensure_ascii=False)  # the entries stay plain JSON


def test_zadarma_transfer_through_the_webhook_names_the_last_extension(telephony_hub: Callable[..., Hub]) -> None:
    hub = telephony_hub()
    hub.start("all")
    client = TestClient(create_app(hub), base_url="http://127.0.0.1")
    zadarma = ZadarmaSender(ZADARMA_SECRET)
    forms = [
        zadarma_form("NOTIFY_START", pbx_call_id="zd-2"),
        zadarma_form("NOTIFY_ANSWER", pbx_call_id="zd-2", internal="101", destination="101"),
        zadarma_form("NOTIFY_ANSWER", pbx_call_id="zd-2", internal="102", destination="102"),
        zadarma_form("NOTIFY_END", pbx_call_id="zd-2", internal="102", duration="95", disposition="answered"),
    ]
    for form in forms + forms[1:2]:  # and Zadarma retries the first answer
        body, headers = zadarma.signed(form)
        assert client.post("/webhooks/telephony/zadarma", data=body, headers=headers).status_code == 200
    [call] = wait_for(lambda: (c := calls_on_timeline(hub)) and c[0].fields.get("operators") and c)
    assert (call.fields["operator"], call.fields["operators"], call.fields["status"]) == (
        "102",
        "101 → 102",
        "answered",
    )
