"""Bitrix24 events in the hub: the application token is checked, the hint is stored, the entity is read after."""

from __future__ import annotations

from typing import Any

import pytest
import structlog
from bitrix24_payloads import fixture_json, fixture_text
from bitrix24_testing import Wired
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from crm_hub_plugins.bitrix24.webhooks import parse_event
from hub.core import schema as s
from hub.core.formcodec import encode
from hub.web.app import create_app

ROUTE = "/webhooks/bitrix24"
FORM = {"content-type": "application/x-www-form-urlencoded"}
RAW_TOKEN = "3c6c9248ec54af6bea1159b43ee0ab32"


def count(hub: Any, table: Any) -> int:
    with hub.store.read() as conn:
        return int(conn.execute(select(func.count()).select_from(table)).scalar_one())


def add_with_id(wired: Wired, kind: str, entity_id: int, fields: dict[str, Any]) -> None:
    """Create a record in the sandbox under the id a documented event names."""
    crm = wired.portal.sandbox.crm
    crm.next_id[kind] = entity_id
    crm.add(kind, fields, emit=False)


def test_a_wrong_application_token_is_401_and_stores_nothing(wired_embedded: Wired) -> None:
    hub = wired_embedded.hub()
    hub.prepare()
    body = fixture_text("event_ONCRMCONTACTADD_raw_body.txt")  # signed with another portal's token
    with structlog.testing.capture_logs() as logs, TestClient(create_app(hub), base_url="http://127.0.0.1") as http:
        answer = http.post(ROUTE, content=body, headers=FORM)
        assert answer.status_code == 401 and answer.json()["error"] == "unauthorized"
        assert RAW_TOKEN not in answer.text and wired_embedded.portal.sandbox.application_token not in answer.text
        stranger = http.post(ROUTE, content="event=&data=1", headers=FORM)  # no token: refused before decoding
        assert stranger.status_code == 401
        token = wired_embedded.portal.sandbox.application_token
        garbage = http.post(ROUTE, content=f"event=&data=1&auth[application_token]={token}", headers=FORM)
        assert garbage.status_code == 400 and garbage.json()["error"] == "bad_input"
    assert count(hub, s.inbox) == 0 and count(hub, s.clients) == 0
    reasons = [(e["event"], e.get("reason")) for e in logs if e["event"].startswith("bitrix24.event_")]
    assert reasons == [
        ("bitrix24.event_unauthorized", "unknown application token"),
        ("bitrix24.event_unauthorized", "auth[application_token] missing"),
        ("bitrix24.event_rejected", "malformed event body"),
    ]
    assert RAW_TOKEN not in repr(logs) and wired_embedded.portal.sandbox.application_token not in repr(logs)


@pytest.mark.parametrize(
    ("name", "as_form"),
    [
        ("event_ONCRMCONTACTADD_raw_body.txt", False),
        ("event_ONCRMCONTACTADD_app.json", True),
        ("event_ONCRMDEALADD_outgoing_webhook.json", True),
    ],
)
def test_the_documented_event_bodies_are_accepted_end_to_end(wired: Wired, name: str, as_form: bool) -> None:
    documented = fixture_json(name) if as_form else None
    body = encode(documented) if documented is not None else fixture_text(name)
    token = documented["auth"]["application_token"] if documented is not None else RAW_TOKEN
    wired.env(APPLICATION_TOKEN=token)
    contact = {
        "NAME": "Иван",
        "LAST_NAME": "Петров",
        "PHONE": [{"VALUE": "8 (916) 123-45-67", "VALUE_TYPE": "WORK"}, {"VALUE": "+7 495 111 22 33"}],
        "EMAIL": [{"VALUE": "Ivan.Petrov@Example.RU"}],
    }
    if "DEAL" in name:
        add_with_id(wired, "contact", 12, contact)
        deal = {"TITLE": "Поставка", "CONTACT_ID": 12, "OPPORTUNITY": "125000.00", "STAGE_ID": "PREPARATION"}
        add_with_id(wired, "deal", int(parse_event(body).entity_id), deal)
    else:
        add_with_id(wired, "contact", int(parse_event(body).entity_id), contact)
    hub = wired.hub()
    hub.start("all")
    with TestClient(create_app(hub), base_url="http://127.0.0.1") as http:
        answer = http.post(ROUTE, content=body, headers=FORM)
        assert answer.status_code == 200 and answer.json()["stored"] == 1
        assert http.post(ROUTE, content=body, headers=FORM).status_code == 200  # a resend is harmless
    assert hub.wait_idle(20)
    [client] = hub.find_clients(phone="+79161234567")
    assert client.name == "Петров Иван"
    assert client.phones == ["+79161234567", "+74951112233"] and client.emails == ["ivan.petrov@example.ru"]
    if "DEAL" in name:
        [deal_item] = hub.timeline(client.id, kinds=["deal"])
        assert (deal_item.fields["title"], deal_item.fields["stage"], deal_item.fields["status"]) == (
            "Поставка",
            "PREPARATION",
            "open",
        )
    assert count(hub, s.dead_letters) == 0


def test_an_entity_deleted_before_it_is_read_is_logged_and_dropped(wired_embedded: Wired) -> None:
    sandbox = wired_embedded.portal.sandbox
    sandbox.bindings.append({"id": 1, "event": "ONCRMCONTACTADD", "handler": "collected", "auth_type": "0"})
    contact_id = sandbox.crm.add("contact", {"NAME": "Удалённый", "PHONE": [{"VALUE": "+79160000001"}]})
    body = sandbox.events[-1]["body"]
    sandbox.crm._delete("contact", {"id": contact_id})
    hub = wired_embedded.hub()
    hub.start("all")
    with structlog.testing.capture_logs() as logs, TestClient(create_app(hub), base_url="http://127.0.0.1") as http:
        assert http.post(ROUTE, content=body, headers=FORM).status_code == 200
        assert hub.wait_idle(20)
    gone = [e for e in logs if e["event"] == "bitrix24.gone_before_read"]
    assert gone and gone[0]["id"] == str(contact_id) and gone[0]["entity"] == "contact"
    assert count(hub, s.clients) == 0 and count(hub, s.dead_letters) == 0 and hub.inbox.pending() == 0


@pytest.mark.parametrize("event", ["ONCRMLEADADD", "ONTASKADD", "ONCRMCONTACTDELETE"])
def test_an_unknown_or_unread_event_is_answered_200_and_stores_nothing(wired_embedded: Wired, event: str) -> None:
    hub = wired_embedded.hub()
    hub.prepare()
    body = encode(
        {
            "event": event,
            "data": {"FIELDS": {"ID": "5"}},
            "ts": "1727018926",
            "auth": {"application_token": wired_embedded.portal.sandbox.application_token, "domain": "x.bitrix24.ru"},
        }
    )
    with structlog.testing.capture_logs() as logs, TestClient(create_app(hub), base_url="http://127.0.0.1") as http:
        answer = http.post(ROUTE, content=body, headers=FORM)
    assert answer.status_code == 200 and answer.json()["stored"] == 0
    assert any(e["event"] == "bitrix24.event_ignored" and e["event_name"] == event for e in logs)
    assert count(hub, s.inbox) == 0
