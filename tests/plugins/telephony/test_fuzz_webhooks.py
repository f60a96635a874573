"""Property tests of the telephony webhooks through HTTP, on both setups: whatever is posted (signed or not),
the answer is never a 5xx, a refused request stores nothing, and a stored event never makes its handler fail."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select

from crm_hub_plugins.telephony.sandbox import MangoSender, ZadarmaSender
from hub.core import schema as s
from hub.core.errors import BadInput
from hub.core.events import ClientKey, InteractionObservation, SourceRef
from hub.web.app import create_app

from .conftest import MANGO_KEY, MANGO_SALT, ZADARMA_SECRET
from .test_fuzz_parsers import GENERIC_EVENT, JSONISH, MANGO_PAYLOAD, TEXT, ZADARMA_FORM

GENERIC_TOKEN = "generic-token-0123456789"
AUTH = {"Authorization": f"Bearer {GENERIC_TOKEN}"}
WEB_FUZZ = settings(
    max_examples=40,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


@pytest.fixture
def web(telephony_hub: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Any, TestClient]]:
    # Forged signatures are part of the fuzz: the limit on failed authentication would answer 429 to the rest.
    monkeypatch.setenv("HUB_HTTP__AUTH_FAILURES", "100000/s burst 100000")
    hub = telephony_hub(generic_token=GENERIC_TOKEN)
    hub.prepare()
    with TestClient(create_app(hub), base_url="http://127.0.0.1", raise_server_exceptions=False) as client:
        yield hub, client


def stored(hub: Any) -> tuple[int, int, int]:
    with hub.store.read() as conn:
        return tuple(  # type: ignore[return-value]
            int(conn.execute(select(func.count()).select_from(t)).scalar() or 0) for t in (s.inbox, s.items, s.state)
        )


def handler_failures(hub: Any) -> list[str]:
    """Handle every stored event now; the errors any of them ended with."""
    while hub.inbox.process_once(limit=200):
        pass
    with hub.store.read() as conn:
        return [str(e) for e in conn.execute(select(s.inbox.c.error).where(s.inbox.c.error.is_not(None))).scalars()]


def check(hub: Any, before: tuple[int, int, int], status: int, text: str) -> None:
    assert status < 500, (status, text[:300])
    if status >= 400:
        assert stored(hub) == before, f"refused with {status} but stored something"
    assert handler_failures(hub) == []


def as_json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, allow_nan=True)  # NaN/Infinity reach the hub as a client sends them


@WEB_FUZZ
@given(kind=st.sampled_from(["call", "summary", "recording", "other"]), payload=MANGO_PAYLOAD, sign=st.booleans())
def test_mango_webhook_never_answers_5xx(web: tuple[Any, TestClient], kind: str, payload: Any, sign: bool) -> None:
    hub, client = web
    before = stored(hub)
    sender = MangoSender(MANGO_KEY, MANGO_SALT if sign else "a-forged-salt")
    r = client.post(f"/webhooks/telephony/mango/events/{kind}", data=sender.form(as_json(payload)))
    check(hub, before, r.status_code, r.text)


@WEB_FUZZ
@given(json_text=st.one_of(TEXT, JSONISH.map(as_json)), extra=st.dictionaries(TEXT, TEXT, max_size=2))
def test_mango_webhook_with_any_json_text_never_answers_5xx(
    web: tuple[Any, TestClient], json_text: str, extra: Any
) -> None:
    hub, client = web
    before = stored(hub)
    r = client.post(
        "/webhooks/telephony/mango/events/call", data={**extra, **MangoSender(MANGO_KEY, MANGO_SALT).form(json_text)}
    )
    check(hub, before, r.status_code, r.text)


@WEB_FUZZ
@given(form=ZADARMA_FORM, sign=st.booleans())
def test_zadarma_webhook_never_answers_5xx(web: tuple[Any, TestClient], form: dict[str, str], sign: bool) -> None:
    hub, client = web
    before = stored(hub)
    try:
        body, headers = ZadarmaSender(ZADARMA_SECRET if sign else "forged").signed(form)
    except BadInput:  # an event Zadarma does not sign: sent as it is
        body, headers = form, {}
    r = client.post("/webhooks/telephony/zadarma", data=body, headers=headers)
    check(hub, before, r.status_code, r.text)


@WEB_FUZZ
@given(event=st.one_of(GENERIC_EVENT, JSONISH))
def test_generic_webhook_never_answers_5xx(web: tuple[Any, TestClient], event: Any) -> None:
    hub, client = web
    before = stored(hub)
    r = client.post(
        "/webhooks/telephony/generic",
        content=as_json(event).encode(),
        headers={"content-type": "application/json", **AUTH},
    )
    check(hub, before, r.status_code, r.text)


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/webhooks/telephony/generic", "[" * 100_000 + "]" * 100_000),
        (
            "/webhooks/telephony/generic",
            '{"call_id": "1", "event": "ended", "direction": "in", "duration_s": Infinity}',
        ),
        ("/webhooks/telephony/generic", '{"call_id": "1", "event": "ended", "direction": "in", "duration_s": 1E+400}'),
        ("/api/calls", "[" * 100_000 + "]" * 100_000),
    ],
)
def test_deep_or_infinite_json_is_a_4xx(web: tuple[Any, TestClient], path: str, body: str) -> None:
    hub, client = web
    before = stored(hub)
    r = client.post(path, content=body.encode(), headers={"content-type": "application/json", **AUTH})
    assert 400 <= r.status_code < 500 and r.json()["error"], r.text[:300]
    assert stored(hub) == before


def test_ids_too_long_for_the_timeline_are_refused_at_the_webhook(web: tuple[Any, TestClient]) -> None:
    hub, client = web
    before = stored(hub)
    long_id = "x" * 300
    mango = MangoSender(MANGO_KEY, MANGO_SALT).form(as_json({"entry_id": long_id, "call_state": "Appeared"}))
    assert client.post("/webhooks/telephony/mango/events/call", data=mango).status_code == 400
    body, headers = ZadarmaSender(ZADARMA_SECRET).signed(
        {
            "event": "NOTIFY_START",
            "pbx_call_id": long_id,
            "caller_id": "79161234567",
            "called_did": "1",
            "call_start": "x",
        }
    )
    assert client.post("/webhooks/telephony/zadarma", data=body, headers=headers).status_code == 400
    generic = {"call_id": long_id, "event": "ended", "direction": "in", "from": "79161234567"}
    assert client.post("/webhooks/telephony/generic", json=generic, headers=AUTH).status_code == 422
    assert stored(hub) == before


def test_a_stored_infinity_no_longer_breaks_call_stats(web: tuple[Any, TestClient]) -> None:
    hub, client = web
    if hub.store.engine.dialect.name == "postgresql":
        pytest.skip("PostgreSQL's JSON never took an Infinity")

    call = InteractionObservation(
        source=SourceRef(system="generic", entity="call", id="old-1"),
        channel="call",
        client=ClientKey(phones=["+79161234567"]),
        direction="in",
        status="answered",
    )
    # As stored before durations were bounded: the model would refuse these values today.
    hub.ingest(call.model_copy(update={"duration_s": float("inf"), "fields": {"talk_s": float("inf")}}))
    r = client.get("/api/calls/stats")
    assert r.status_code == 200, r.text[:300]
