"""amoCRM → hub in bulk: reconciliation catches what webhooks missed, backfill imports everything 250 a page."""

from __future__ import annotations

from typing import Any

import pytest
from amocrm_testing import Connected
from click.testing import CliRunner

from crm_hub_plugins.amocrm.connection import accounts
from crm_hub_plugins.amocrm.inbound import Inbound
from hub.cli import build_cli
from hub.core.plugins import PluginHost


def cursor(hub: Any, key: str, entity: str) -> Any:
    return hub.state.get(f"amocrm:{key}", f"cursor:{entity}")


def test_reconciliation_catches_a_change_made_while_the_hub_was_down(connected: Connected) -> None:
    first = connected.hub()
    Inbound(accounts(first).get()).reconcile()  # the first run only sets the cursors
    start = cursor(first, connected.key, "contacts")
    assert start is not None
    first.store.dispose()  # the hub is down; meanwhile somebody adds a contact in amoCRM
    client = connected.sandbox.client()
    client.add(
        "/api/v4/contacts",
        [
            {
                "name": "Пётр Сидоров",
                "custom_fields_values": [{"field_code": "PHONE", "values": [{"value": "89165550011"}]}],
            }
        ],
    )
    second = connected.hub()
    summary = Inbound(accounts(second).get()).reconcile()
    assert summary.created == 1
    [found] = second.find_clients(phone="+79165550011")
    assert found.name == "Пётр Сидоров"
    assert cursor(second, connected.key, "contacts") >= start


def test_the_cursor_moves_only_after_the_changes_are_stored(
    connected_embedded: Connected, monkeypatch: pytest.MonkeyPatch
) -> None:
    hub = connected_embedded.hub()
    inbound = Inbound(accounts(hub).get())
    inbound.reconcile()
    hub.state.put(f"amocrm:{connected_embedded.key}", "cursor:contacts", 1)
    connected_embedded.sandbox.admin("seed", {"contacts": 3})

    def broken(*_args: Any, **_kwargs: Any) -> Any:
        raise OSError("database is gone")

    monkeypatch.setattr(hub, "ingest_many", broken)
    with pytest.raises(OSError):
        inbound.reconcile()
    assert cursor(hub, connected_embedded.key, "contacts") == 1
    monkeypatch.undo()
    assert inbound.reconcile().created == 3
    assert cursor(hub, connected_embedded.key, "contacts") > 1


def test_backfill_imports_600_contacts_and_their_leads_250_a_page(connected_embedded: Connected) -> None:
    import crm_hub_plugins.amocrm.plugin

    sandbox = connected_embedded.sandbox
    contacts = sandbox.admin("seed", {"contacts": 600})["contacts"]
    sandbox.admin(
        "seed",
        {
            "leads": [
                {"name": f"Сделка {n}", "price": 1000 + n, "_embedded": {"contacts": [{"id": contacts[n]}]}}
                for n in range(300)
            ]
        },
    )
    sandbox.admin(
        "seed", {"leads": [{"name": "Выиграна", "status_id": 142, "_embedded": {"contacts": [{"id": contacts[0]}]}}]}
    )
    for name, value in connected_embedded.backend.env().items():
        connected_embedded.monkeypatch.setenv(name, value)
    before = dict(sandbox.sandbox.by_route)
    host = PluginHost(autoload=False, extra=[("amocrm", crm_hub_plugins.amocrm.plugin)])
    result = CliRunner().invoke(build_cli(host), ["amocrm", "backfill"], obj=host, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert "clients created" in result.output and "600" in result.output
    made = {k: v - before.get(k, 0) for k, v in sandbox.sandbox.by_route.items() if v != before.get(k, 0)}
    assert made == {
        "GET /api/v4/companies": 1,  # 204: none
        "GET /api/v4/contacts": 3,  # 600 at 250 a page
        "GET /api/v4/leads": 2,  # 301 at 250 a page
        "GET /api/v4/leads/pipelines": 1,
        "GET /api/v4/contacts/notes": 1,
        "GET /api/v4/companies/notes": 1,
        "GET /api/v4/leads/notes": 1,
        "GET /api/v4/tasks": 1,
    }
    hub = connected_embedded.hub()
    [client] = hub.find_clients(phone="+79160000000")
    deals = hub.timeline(client.id, kinds=["deal"])
    assert sorted((d.fields["title"], d.fields["status"]) for d in deals) == [("Выиграна", "won"), ("Сделка 0", "open")]
    assert sum(1 for _ in hub.iter_items(kind="deal")) == 301
