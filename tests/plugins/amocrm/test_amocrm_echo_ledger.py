"""The webhooks amoCRM sends for contacts the hub pushed are known as echoes before any API re-read."""

from __future__ import annotations

from typing import Any

from amocrm_testing import WEBHOOK_SECRET, Connected
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from crm_hub_plugins.amocrm.connection import accounts
from crm_hub_plugins.amocrm.sink import Writer
from hub.core import schema as s
from hub.core.events import ClientObservation, SourceRef
from hub.web.app import create_app

ROUTE = f"/webhooks/amocrm/{WEBHOOK_SECRET}"
FORM = {"content-type": "application/x-www-form-urlencoded"}


def inbox_count(hub: Any) -> int:
    with hub.store.read() as conn:
        return int(conn.execute(select(func.count()).select_from(s.inbox)).scalar_one())


def test_webhooks_for_the_hubs_own_writes_cost_no_reread_and_a_persons_edit_does(connected_embedded: Connected) -> None:
    sandbox = connected_embedded.sandbox
    hub = connected_embedded.hub()
    hub.prepare()
    views = []
    for n in range(20):
        obs = ClientObservation(
            source=SourceRef(system="excel", account="x.xlsx", entity="row", id=str(n)),
            name=f"Клиент {n}",
            phones=[f"+7916{n:07d}"],
            emails=[f"client{n}@example.ru"],
        )
        views.append(hub.get_client(hub.ingest(obs).client_id))
    sandbox.sandbox.sent_webhooks.clear()
    Writer(accounts(hub).get()).ensure_clients(views)
    bodies = [w.body for w in sandbox.sandbox.sent_webhooks]
    assert bodies, "the sandbox sent no webhook for the created contacts"
    requests_before = sandbox.sandbox.requests
    with TestClient(create_app(hub), base_url="http://127.0.0.1") as http:
        for body in bodies:
            answer = http.post(ROUTE, content=body, headers=FORM)
            assert answer.status_code == 200 and answer.json()["stored"] == 0, answer.text
        assert inbox_count(hub) == 0
        # A person renames one of them in amoCRM: that webhook is news and is stored to be re-read.
        [made] = sandbox.client().get("/api/v4/contacts", params={"limit": 1})["_embedded"]["contacts"]
        sandbox.client().update("/api/v4/contacts", [{"id": made["id"], "name": "Иван Петров"}])
        answer = http.post(ROUTE, content=sandbox.sandbox.sent_webhooks[-1].body, headers=FORM)
        assert answer.json()["stored"] == 1
    assert sandbox.sandbox.requests - requests_before == 2  # the person's edit only; no re-read of an echo
