"""Mango Office, Zadarma and generic-form webhooks into a running hub, on both setups."""

from __future__ import annotations

import json
import random
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qsl
from zoneinfo import ZoneInfo

from fastapi.testclient import TestClient

from crm_hub_plugins.telephony.intake import INDEX_SCOPE
from crm_hub_plugins.telephony.runtime import telephony
from crm_hub_plugins.telephony.sandbox import MangoSender, ZadarmaSender
from hub.web.app import create_app
from tests.conftest import wait_for

from .conftest import FIXTURES, MANGO_KEY, MANGO_SALT, ZADARMA_SECRET, calls_on_timeline, tasks_on_timeline

MANGO = "/webhooks/telephony/mango/events"
ZADARMA = "/webhooks/telephony/zadarma"
GENERIC = "/webhooks/telephony/generic"


def mango_raw(name: str) -> str:
    return (FIXTURES / "mango" / name).read_text(encoding="utf-8").strip()


def zadarma_fixture() -> dict[str, tuple[dict[str, str], str]]:
    blocks: dict[str, tuple[dict[str, str], str]] = {}
    body: dict[str, str] | None = None
    for line in (FIXTURES / "zadarma" / "webhooks.txt").read_text(encoding="utf-8").splitlines():
        if line.startswith("event="):
            body = dict(parse_qsl(line, keep_blank_values=True))
        elif line.startswith("Signature:") and body is not None:
            blocks[body["event"]] = (body, line.split(":", 1)[1].strip())
            body = None
    return blocks


MOSCOW = ZoneInfo("Europe/Moscow")


def zadarma_today(started: datetime | None = None) -> tuple[dict[str, tuple[dict[str, str], str]], datetime]:
    """The recorded notifications as Zadarma would send them now: ``call_start`` (signed) moved to ``started``
    (default: a minute ago, whole seconds) and each signed again; the hub refuses notifications of long ago."""
    started = started or datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=1)
    stamp = started.astimezone(MOSCOW).strftime("%Y-%m-%d %H:%M:%S")
    blocks = {}
    for event, (form, _signature) in zadarma_fixture().items():
        fields, headers = ZadarmaSender(ZADARMA_SECRET).signed(
            {**form, "call_start": stamp} if "call_start" in form else form
        )
        blocks[event] = (fields, headers["Signature"])
    return blocks, started


def nothing_stored(hub) -> bool:
    return hub.inbox.pending() == 0 and calls_on_timeline(hub) == []


def test_mango_signed_events_are_stored_and_a_bad_sign_gets_401(telephony_hub) -> None:
    hub = telephony_hub()
    hub.start("all")
    client = TestClient(create_app(hub), base_url="http://127.0.0.1")
    summary = mango_raw("events_summary_inbound_answered.json")
    forged = MangoSender(MANGO_KEY, "not-the-salt").form(summary)
    answer = client.post(f"{MANGO}/summary", data=forged)
    assert answer.status_code == 401 and MANGO_SALT not in answer.text
    assert nothing_stored(hub)
    assert client.post(f"{MANGO}/summary", content=b"\xff\xfe not a form").status_code == 400
    sender = MangoSender(MANGO_KEY, MANGO_SALT)
    answer = client.post(f"{MANGO}/summary", data=sender.form(summary))
    assert answer.status_code == 200 and answer.json() == {"status": "stored"}
    assert hub.wait_idle()
    assert calls_on_timeline(hub) == [], "the fixture's caller (13 digits) is not a phone number: no client"
    real = summary.replace("7800123635242", "79161234567").replace("232wc3e3w3s222", "entry-2")
    assert client.post(f"{MANGO}/summary", data=sender.form(real)).json() == {"status": "stored"}
    [call] = wait_for(lambda: calls_on_timeline(hub))
    assert (call.fields["status"], call.fields["direction"], call.fields["talk_s"]) == ("answered", "in", 10.0)
    assert call.source.system == "mango" and call.source.id == "entry-2"
    assert call.client_id == hub.find_clients(phone="+79161234567")[0].id


def test_mango_events_repeated_and_out_of_order_make_one_entry_in_its_final_state(telephony_hub) -> None:
    hub = telephony_hub(extensions__1234="Оператор 1234")
    hub.start("all")
    client = TestClient(create_app(hub), base_url="http://127.0.0.1")
    sender = MangoSender(MANGO_KEY, MANGO_SALT)
    entry = "entry-out-1"
    legs = [json.loads(line) for line in mango_raw("events_call_outgoing_sequence.jsonl").splitlines()]
    for leg in legs:
        leg.update(entry_id=entry, command_id="hub-req-1", to={"number": "79161230000"})
    summary = {
        "entry_id": entry, "call_direction": 2, "from": {"extension": "1234"}, "to": {"number": "79161230000"},
        "create_time": 1399906976, "talk_time": 1399906978, "end_time": 1399906990, "entry_result": 1,
    }  # fmt: skip
    recording = json.loads(mango_raw("events_recording_started.json")) | {"entry_id": entry}
    deliveries = [("recording", recording), ("summary", summary)] + [("call", leg) for leg in legs]
    deliveries += deliveries[:3]  # Mango retries what it thinks failed
    random.Random(9).shuffle(deliveries)
    for kind, payload in deliveries:
        assert client.post(f"{MANGO}/{kind}", data=sender.form(payload)).status_code == 200
    assert hub.wait_idle()
    [call] = calls_on_timeline(hub)
    assert call.fields["direction"] == "out" and call.fields["status"] == "answered"
    assert call.fields["operator"] == "Оператор 1234"
    assert call.fields["recording"] == "r100:777:500:256"
    assert call.fields["originate_id"] == "hub-req-1"
    assert call.fields["talk_s"] == 12.0
    assert tasks_on_timeline(hub) == []


def test_zadarma_echo_signature_and_replay(telephony_hub) -> None:
    hub = telephony_hub(zadarma__timezone="Europe/Moscow")
    hub.start("all")
    client = TestClient(create_app(hub), base_url="http://127.0.0.1")
    echo = client.get(ZADARMA, params={"zd_echo": "d41d8cd98f"})
    assert (echo.status_code, echo.text) == (200, "d41d8cd98f")
    blocks, started = zadarma_today()
    start, _ = blocks["NOTIFY_START"]
    assert client.post(ZADARMA, data=start, headers={"Signature": "bm90IGl0"}).status_code == 401
    assert client.post(ZADARMA, data=start).status_code == 401
    assert nothing_stored(hub)
    assert client.post(ZADARMA, data={"event": "NOTIFY_SMS", "text": "hi"}).json() == {"status": "ignored"}
    for event in ("NOTIFY_START", "NOTIFY_END", "NOTIFY_RECORD"):
        form, signature = blocks[event]
        assert client.post(ZADARMA, data=form, headers={"Signature": signature}).json() == {"status": "stored"}
    assert hub.wait_idle()
    end, end_sig = blocks["NOTIFY_END"]
    replay = client.post(ZADARMA, data=end, headers={"Signature": end_sig})
    assert replay.status_code == 200 and replay.json() == {"status": "duplicate"}
    assert hub.wait_idle()
    [call] = calls_on_timeline(hub)
    assert (call.source.system, call.source.id, call.fields["status"]) == ("zadarma", "in_3b4c2c1d5e", "answered")
    assert call.occurred_at == started  # call_start is Moscow time
    assert call.fields["talk_s"] == 73.0 and call.fields["recording"] == "1700215273.123456"
    assert call.version == 1, "the replay changed nothing"
    # The secret and its signing scheme: a zadarma-signed outbound busy call made with our own sender.
    out = ZadarmaSender(ZADARMA_SECRET).signed(blocks["NOTIFY_OUT_END"][0])
    assert client.post(ZADARMA, data=out[0], headers=out[1]).status_code == 200
    wait_for(lambda: len(calls_on_timeline(hub)) == 2)


def test_generic_form_with_token_bad_input_and_a_missed_call(telephony_hub) -> None:
    hub = telephony_hub(generic_token="form-token-0123456789")
    hub.start("all")
    client = TestClient(create_app(hub), base_url="http://127.0.0.1")
    auth = {"Authorization": "Bearer form-token-0123456789"}
    ended = {
        "call_id": "pbx-77", "event": "ended", "direction": "in", "from": "+44 20 7946 0958", "extension": "105",
        "started_at": "2025-11-17T10:00:00+03:00", "ended_at": "2025-11-17T10:00:30+03:00", "status": "missed",
    }  # fmt: skip
    assert client.post(GENERIC, json=ended).status_code == 401
    assert client.post(GENERIC, json=ended, headers={"Authorization": "Bearer nope"}).status_code == 401
    assert client.post(GENERIC, content=b"{not json", headers=auth).status_code == 400
    bad = client.post(GENERIC, json={**ended, "event": "exploded"}, headers=auth)
    assert bad.status_code == 422 and "event" in bad.json()["detail"]
    assert nothing_stored(hub)
    ringing = {**ended, "event": "ringing"}
    for body in (ended, ringing, ended):
        assert client.post(GENERIC, json=body, headers=auth).status_code == 202
    [task] = wait_for(lambda: tasks_on_timeline(hub))
    [call] = calls_on_timeline(hub)
    assert (call.fields["status"], call.fields["direction"]) == ("missed", "in")
    assert hub.get_client(call.client_id).phones == ["+442079460958"]
    assert task.client_id == call.client_id and task.source.id == "pbx-77"
    not_a_phone = {**ended, "call_id": "pbx-78", "from": "Anonymous"}
    assert client.post(GENERIC, json=not_a_phone, headers=auth).status_code == 202
    assert hub.wait_idle()
    assert len(calls_on_timeline(hub)) == 1, "a caller id that is no phone names no client"


def test_webhook_events_survive_a_restart_before_they_are_handled(telephony_hub, backend) -> None:
    """Stored before the answer, handled by whichever process runs the inbox next."""
    web = telephony_hub()
    web.prepare()  # the web role only: nothing handles the inbox here
    client = TestClient(create_app(web), base_url="http://127.0.0.1")
    sender = MangoSender(MANGO_KEY, MANGO_SALT)
    summary = mango_raw("events_summary_inbound_answered.json").replace("7800123635242", "79161234567")
    assert client.post(f"{MANGO}/summary", data=sender.form(summary)).json() == {"status": "stored"}
    assert calls_on_timeline(web) == []
    web.store.dispose()
    worker = telephony_hub()
    worker.start("all")
    wait_for(lambda: len(calls_on_timeline(worker)) == 1)


def test_filed_events_are_forgotten_after_the_retention(telephony_hub) -> None:
    hub = telephony_hub(call_events_retention_hours=1)
    hub.start("all")
    client = TestClient(create_app(hub), base_url="http://127.0.0.1")
    form, signature = zadarma_today()[0]["NOTIFY_END"]
    assert client.post(ZADARMA, data=form, headers={"Signature": signature}).json() == {"status": "stored"}
    wait_for(lambda: calls_on_timeline(hub))
    intake = telephony(hub).intake
    assert intake.forget_old_calls() == 0
    assert intake.forget_old_calls(now=datetime.now(UTC) + timedelta(hours=2)) == 1
    assert hub.state.items(INDEX_SCOPE) == {} and not intake.already_filed(
        "zadarma", "zd-key", "in_3b4c2c1d5e", "NOTIFY_END"
    )
    assert len(calls_on_timeline(hub)) == 1, "the timeline keeps the call"
