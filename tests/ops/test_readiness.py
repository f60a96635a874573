"""/readyz means it: a database that refuses writes, an unreachable bus, a stuck relay and a down account each
make it 503 and say which."""

from __future__ import annotations

import time

from fastapi.testclient import TestClient

from hub import hookimpl
from hub.core.events import ClientObservation, SourceRef
from hub.core.readiness import health_providers
from hub.testing import free_port
from hub.web.app import create_app


def readyz(hub):
    with TestClient(create_app(hub), base_url="http://127.0.0.1") as client:
        return client.get("/readyz")


def test_ready_when_everything_answers(backend):
    hub = backend.hub()
    hub.prepare()
    answer = readyz(hub)
    assert answer.status_code == 200, answer.json()
    assert answer.json()["checks"] == {"database": "ok", "bus": "ok", "relay": "ok"}


def read_only_url(backend) -> str:
    if backend.kind == "production":
        return backend.database_url + "%20-cdefault_transaction_read_only%3Don"
    return f"sqlite:///file:{backend.tmp_path / 'hub.db'}?mode=ro&uri=true"


def test_a_database_that_refuses_writes_is_not_ready(backend):
    backend.hub().prepare()  # the schema exists; now the same database, read-only
    hub = backend.hub(database_url=read_only_url(backend), auto_migrate=False)
    hub.prepare()
    answer = readyz(hub)
    assert answer.status_code == 503 and answer.json()["database"] is False
    assert "read" in answer.json()["checks"]["database"].lower()  # readonly / read-only transaction


def test_an_unreachable_bus_is_not_ready(embedded):
    hub = embedded.hub(bus_url=f"amqp://guest:s3cretpass@127.0.0.1:{free_port()}//")
    hub.prepare()
    answer = readyz(hub)
    assert answer.status_code == 503
    problem = answer.json()["checks"]["bus"]
    assert "cannot reach the bus at amqp://127.0.0.1:" in problem and "s3cretpass" not in answer.text


def test_events_no_relay_publishes_make_the_web_role_not_ready(production):
    hub = production.hub(relay_stuck_after=0.5)
    hub.prepare()
    hub.ingest(ClientObservation(source=SourceRef(system="excel", entity="row", id="1"), phones=["+79161234567"]))
    assert readyz(hub).status_code == 200  # fresh: a relay has time to take it
    time.sleep(1.0)  # no worker runs: the event stays in the outbox
    answer = readyz(hub)
    assert answer.status_code == 503 and "no relay is publishing" in answer.json()["checks"]["relay"]


class AccountsPlugin:
    """Reports two accounts through the existing hub_health hook, one of them down."""

    @hookimpl
    def hub_health(self, hub):
        return {
            "status": "down",
            "portals": {
                "a.bitrix24.ru": {"status": "ok"},
                "b.bitrix24.ru": {"status": "down", "detail": "reconnect required"},
            },
        }


def test_accounts_that_are_down_are_listed(embedded):
    hub = embedded.hub([("crm", AccountsPlugin())])
    hub.prepare()
    health_providers(hub).register("amocrm:acme", lambda: {"status": "down", "detail": "token refused"})
    health_providers(hub).register("amocrm:other", lambda: {"status": "ok"})
    answer = readyz(hub)
    assert answer.status_code == 503
    assert sorted(answer.json()["down"]) == ["amocrm:acme", "crm/portals/b.bitrix24.ru"]
    assert answer.json()["checks"] == {"database": "ok", "bus": "ok", "relay": "ok"}


def test_a_provider_that_raises_is_a_down_account_not_a_500(embedded):
    hub = embedded.hub()
    hub.prepare()

    def broken():
        raise RuntimeError("lost its connection")

    health_providers(hub).register("telephony:ami", broken)
    answer = readyz(hub)
    assert answer.status_code == 503 and answer.json()["down"] == ["telephony:ami"]
    assert "lost its connection" in answer.json()["accounts"]["telephony:ami"]["error"]
