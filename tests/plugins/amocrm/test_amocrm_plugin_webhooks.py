"""amoCRM webhooks in the hub: a secret path, a durable hint, and the entity re-read through the API."""

from __future__ import annotations

from typing import Any

from amocrm_testing import WEBHOOK_SECRET, Connected, Running, fixture_text
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from hub.core import schema as s
from hub.web.app import create_app

ROUTE = f"/webhooks/amocrm/{WEBHOOK_SECRET}"
FORM = {"content-type": "application/x-www-form-urlencoded", "user-agent": "amoCRM-Webhooks/3.0"}


def count(hub: Any, table: Any) -> int:
    with hub.store.read() as conn:
        return int(conn.execute(select(func.count()).select_from(table)).scalar_one())


def make_contact(sandbox: Running, name: str, phone: str) -> tuple[int, str]:
    """Create a contact through the API; return its id and the webhook body amoCRM sends for it."""
    client = sandbox.client()
    [made] = client.add(
        "/api/v4/contacts",
        [{"name": name, "custom_fields_values": [{"field_code": "PHONE", "values": [{"value": phone}]}]}],
    )
    return int(made["id"]), sandbox.sandbox.sent_webhooks[-1].body


def test_a_wrong_or_missing_secret_is_404_and_stores_nothing(connected_embedded: Connected) -> None:
    hub = connected_embedded.hub()
    hub.prepare()
    body = fixture_text("webhook_contacts_add_raw_body.txt")
    with TestClient(create_app(hub), base_url="http://127.0.0.1") as http:
        assert http.post("/webhooks/amocrm/not-the-secret-at-all", content=body, headers=FORM).status_code == 404
        assert http.post("/webhooks/amocrm/", content=body, headers=FORM).status_code == 404
        answer = http.post(ROUTE, content="garbage&&&", headers=FORM)
        assert answer.status_code == 400 and answer.json()["error"] == "bad_input"
    assert count(hub, s.inbox) == 0 and count(hub, s.clients) == 0


def test_a_hint_is_reread_and_the_client_arrives_with_its_cyrillic_name_and_normalised_phone(
    connected: Connected,
) -> None:
    hub = connected.hub()
    hub.start("all")
    contact_id, body = make_contact(connected.sandbox, "Иван Петров", "8 (916) 123-45-67")
    with TestClient(create_app(hub), base_url="http://127.0.0.1") as http:
        answer = http.post(ROUTE, content=body, headers=FORM)
        assert answer.status_code == 200 and answer.json()["stored"] == 1
        assert http.post(ROUTE, content=body, headers=FORM).json()["stored"] in (0, 1)  # a resend is harmless
    assert hub.wait_idle(20)
    [client] = hub.find_clients(phone="+79161234567")
    assert client.name == "Иван Петров" and client.phones == ["+79161234567"]
    assert {(r.system, r.entity, r.id) for r in client.refs} == {("amocrm", "contact", str(contact_id))}


def test_a_forged_webhook_body_is_not_trusted_the_api_wins(connected_embedded: Connected) -> None:
    hub = connected_embedded.hub()
    hub.start("all")
    _contact_id, body = make_contact(connected_embedded.sandbox, "Мария Иванова", "+7 916 765-43-21")
    forged = body.replace("%D0%9C%D0%B0%D1%80%D0%B8%D1%8F", "%D0%92%D0%B7%D0%BB%D0%BE%D0%BC")  # Мария → Взлом
    assert forged != body
    with TestClient(create_app(hub), base_url="http://127.0.0.1") as http:
        assert http.post(ROUTE, content=forged, headers=FORM).status_code == 200
    assert hub.wait_idle(20)
    [client] = hub.find_clients(phone="+79167654321")
    assert client.name == "Мария Иванова"


def test_a_contact_deleted_before_it_is_read_is_logged_and_dropped(connected_embedded: Connected) -> None:
    hub = connected_embedded.hub()
    hub.start("all")
    contact_id, body = make_contact(connected_embedded.sandbox, "Удалённый Контакт", "+7 916 000-00-01")
    connected_embedded.sandbox.admin("delete", {"entity": "contacts", "id": contact_id})
    with TestClient(create_app(hub), base_url="http://127.0.0.1") as http:
        assert http.post(ROUTE, content=body, headers=FORM).status_code == 200
        # The documented capture names a contact this account never had: the same path.
        raw = fixture_text("webhook_contacts_add_raw_body.txt")
        assert http.post(ROUTE, content=raw, headers=FORM).status_code == 200
    assert hub.wait_idle(20)
    assert count(hub, s.clients) == 0 and count(hub, s.dead_letters) == 0 and hub.inbox.pending() == 0
