"""Zadarma: fixture signatures verify, zd_echo, replays are dropped, notifications become calls, callback API."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qsl

import httpx
import pytest

from crm_hub_plugins.telephony.calls import CallRecord, RingingNotice
from crm_hub_plugins.telephony.sandbox import ZadarmaSender, create_app
from crm_hub_plugins.telephony.zadarma import (
    ZadarmaCallAssembler,
    callback_request,
    send_callback,
    verify_notification,
    zd_echo,
)
from hub.core.errors import BadInput, ExternalAPIError
from hub.testing import serve_asgi

from .conftest import FIXTURES

SECRET = "test-secret"  # the fixture says its signatures were made with this API secret


def fixture_webhooks() -> list[tuple[str, dict[str, str], str]]:
    blocks: list[tuple[str, dict[str, str], str]] = []
    lines = (FIXTURES / "zadarma" / "webhooks.txt").read_text(encoding="utf-8").splitlines()
    body: dict[str, str] | None = None
    for line in lines:
        if line.startswith("event="):
            body = dict(parse_qsl(line, keep_blank_values=True))
        elif line.startswith("Signature:") and body is not None:
            blocks.append((body["event"], body, line.split(":", 1)[1].strip()))
            body = None
    return blocks


WEBHOOKS = fixture_webhooks()


def test_fixture_has_every_documented_block() -> None:
    assert [event for event, _, _ in WEBHOOKS] == [
        "NOTIFY_START",
        "NOTIFY_END",
        "NOTIFY_OUT_START",
        "NOTIFY_OUT_END",
        "NOTIFY_RECORD",
    ]


@pytest.mark.parametrize(("event", "form", "signature"), WEBHOOKS, ids=[w[0] for w in WEBHOOKS])
def test_fixture_signatures_verify(event: str, form: dict[str, str], signature: str) -> None:
    verify_notification(form, signature, SECRET)
    assert ZadarmaSender(SECRET).signed(form)[1]["Signature"] == signature


@pytest.mark.parametrize(("event", "form", "signature"), WEBHOOKS, ids=[w[0] for w in WEBHOOKS])
def test_tampered_or_unsigned_notifications_are_rejected(event: str, form: dict[str, str], signature: str) -> None:
    with pytest.raises(BadInput):
        verify_notification(form, signature, "another-secret")
    with pytest.raises(BadInput):
        verify_notification(form, None, SECRET)
    field = "caller_id" if "caller_id" in form and event != "NOTIFY_OUT_END" else "pbx_call_id"
    if event in ("NOTIFY_OUT_START", "NOTIFY_OUT_END"):
        field = "destination"
    with pytest.raises(BadInput):
        verify_notification({**form, field: form[field] + "0"}, signature, SECRET)


def test_unknown_event_cannot_be_verified() -> None:
    with pytest.raises(BadInput, match="no known signature"):
        verify_notification({"event": "NOTIFY_SOMETHING"}, "x", SECRET)


def test_zd_echo_is_answered_with_its_value() -> None:
    assert zd_echo({"zd_echo": "d41d8cd9"}) == "d41d8cd9"
    assert zd_echo({}) is None


def clock_from(start: datetime) -> object:
    ticks = itertools.count()
    return lambda: start + timedelta(seconds=80 * next(ticks))


def test_inbound_notifications_make_one_answered_call_and_replays_are_ignored() -> None:
    assembler = ZadarmaCallAssembler(clock=clock_from(datetime(2025, 11, 17, 7, 0, 1, tzinfo=UTC)))  # type: ignore[arg-type]
    forms = {event: form for event, form, _ in WEBHOOKS}
    internal = {**forms["NOTIFY_START"], "event": "NOTIFY_INTERNAL", "internal": "101"}
    updates = [
        u
        for f in (forms["NOTIFY_START"], internal, internal, forms["NOTIFY_END"], forms["NOTIFY_END"])
        for u in assembler.feed(f)
    ]
    notices = [u for u in updates if isinstance(u, RingingNotice)]
    [call] = [u for u in updates if isinstance(u, CallRecord)]
    assert assembler.duplicates == 2
    assert len(notices) == 1 and notices[0].extension == "101"
    assert (call.call_id, call.direction, call.status, call.extension) == ("in_3b4c2c1d5e", "in", "answered", "101")
    assert call.number is not None and call.number.e164 == "+79161234567"
    assert call.started_at == datetime(2025, 11, 17, 7, 0, tzinfo=UTC)  # 10:00 Moscow time
    assert call.talk_s == 73.0
    assert call.recording == "1700215273.123456"
    assert call.line_number == "74951234567"


def test_outbound_busy_call_and_late_recording() -> None:
    assembler = ZadarmaCallAssembler()
    forms = {event: form for event, form, _ in WEBHOOKS}
    [notice] = assembler.feed(forms["NOTIFY_OUT_START"])
    assert isinstance(notice, RingingNotice) and notice.direction == "out"
    [call] = assembler.feed(forms["NOTIFY_OUT_END"])
    assert isinstance(call, CallRecord)
    assert (call.direction, call.status, call.extension, call.talk_s) == ("out", "busy", "101", 0.0)
    assert call.number is not None and call.number.e164 == "+79031112233"
    late = {**forms["NOTIFY_RECORD"], "pbx_call_id": "out_9f8e7d6c5b"}
    [updated] = assembler.feed(late)
    assert isinstance(updated, CallRecord) and updated.call_id == call.call_id
    assert updated.recording == "1700215273.123456"
    assert assembler.feed(late) == []


def test_callback_request_is_signed_as_the_api_expects() -> None:
    app = create_app(zadarma_key="k1", zadarma_secret="s1")
    with serve_asgi(app) as base, httpx.Client() as http:
        answer = send_callback(
            http, callback_request(api_url=base, key="k1", secret="s1", from_="101", to="79161234567")
        )
        assert answer["status"] == "success"
        with pytest.raises(ExternalAPIError, match="refused"):
            send_callback(http, callback_request(api_url=base, key="k1", secret="bad", from_="101", to="1"))
    assert app.state.zadarma_callbacks == [{"format": "json", "from": "101", "to": "79161234567"}]
    assert "s1" not in repr(callback_request(api_url="x", key="k1", secret="s1", from_="1", to="2"))
