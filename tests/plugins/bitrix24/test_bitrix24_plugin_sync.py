"""Bitrix24 → hub in bulk: reconciliation finds what lost events missed, backfill imports 2,500 rows a request."""

from __future__ import annotations

import math
from typing import Any

import pytest
from bitrix24_testing import Wired
from click.testing import CliRunner

from hub.cli import build_cli
from hub.core.plugins import PluginHost
from plugins.bitrix24.connection import portals
from plugins.bitrix24.inbound import Inbound


def cursor(hub: Any, key: str, entity: str) -> Any:
    return hub.state.get(f"bitrix24:{key}", f"cursor:{entity}")


def test_reconciliation_catches_a_change_made_while_the_hub_was_down(wired: Wired) -> None:
    first = wired.hub()
    Inbound(portals(first).get()).reconcile()  # the first run only sets the cursors
    start = cursor(first, wired.key, "contact")
    assert start is not None
    first.store.dispose()  # the hub is down; Bitrix24's event for this change is lost for good
    wired.portal.sandbox.crm.add(
        "contact", {"NAME": "Пётр", "LAST_NAME": "Сидоров", "PHONE": [{"VALUE": "89165550011"}]}
    )
    second = wired.hub()
    summary = Inbound(portals(second).get()).reconcile()
    assert summary.counts["contact created"] == 1
    [found] = second.find_clients(phone="+79165550011")
    assert found.name == "Сидоров Пётр"
    assert cursor(second, wired.key, "contact") >= start
    assert Inbound(portals(second).get()).reconcile().total("created") == 0  # the overlap re-reads, changes nothing


def test_the_cursor_moves_only_after_the_changes_are_stored(
    wired_embedded: Wired, monkeypatch: pytest.MonkeyPatch
) -> None:
    hub = wired_embedded.hub()
    inbound = Inbound(portals(hub).get())
    inbound.reconcile()
    old = "2020-01-01T00:00:00+00:00"
    hub.state.put(f"bitrix24:{wired_embedded.key}", "cursor:contact", old)
    wired_embedded.portal.sandbox.crm.seed_contacts(3)

    def broken(*_args: Any, **_kwargs: Any) -> Any:
        raise OSError("database is gone")

    monkeypatch.setattr(hub, "ingest", broken)
    with pytest.raises(OSError):
        inbound.reconcile()
    assert cursor(hub, wired_embedded.key, "contact") == old
    monkeypatch.undo()
    assert inbound.reconcile().counts["contact created"] == 3
    assert cursor(hub, wired_embedded.key, "contact") > old


def run_cli(wired: Wired, *args: str) -> Any:
    import plugins.bitrix24.plugin

    for name, value in wired.backend.env().items():
        wired.monkeypatch.setenv(name, value)
    host = PluginHost(autoload=False, extra=[("bitrix24", plugins.bitrix24.plugin)])
    result = CliRunner().invoke(build_cli(host), ["bitrix24", *args], obj=host, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result


def test_backfill_of_3000_contacts_takes_one_list_request_per_2500(wired_embedded: Wired) -> None:
    sandbox = wired_embedded.portal.sandbox
    sandbox.crm.seed_contacts(3000)
    before = sandbox.requests
    result = run_cli(wired_embedded, "backfill", "--only", "contact")
    assert sandbox.requests - before == math.ceil(3000 / 2500)
    assert "contact created" in result.output and "3000" in result.output
    hub = wired_embedded.hub()
    [client] = hub.find_clients(phone="+79160003000")
    assert client.name == "Тестовый Контакт 3000" and client.emails == ["contact3000@example.ru"]


def test_backfill_imports_companies_deals_activities_and_comments(wired: Wired) -> None:
    crm = wired.portal.sandbox.crm
    company = crm.add("company", {"TITLE": "ООО Ромашка", "PHONE": [{"VALUE": "+7 495 123-45-67"}]}, emit=False)
    contact = crm.add(
        "contact", {"NAME": "Анна", "COMPANY_ID": company, "PHONE": [{"VALUE": "8 916 111 22 33"}]}, emit=False
    )
    crm.add(
        "deal",
        {"TITLE": "Поставка", "CONTACT_ID": contact, "STAGE_ID": "WON", "OPPORTUNITY": "5000", "CURRENCY_ID": "RUB"},
        emit=False,
    )
    crm.add(
        "activity",
        {
            "OWNER_TYPE_ID": 3,
            "OWNER_ID": contact,
            "TYPE_ID": 2,
            "DIRECTION": 2,
            "SUBJECT": "Исходящий звонок",
            "START_TIME": "2025-03-01T10:00:00+03:00",
            "END_TIME": "2025-03-01T10:05:00+03:00",
            "COMMUNICATIONS": [{"VALUE": "+79161112233", "TYPE": "PHONE"}],
        },
        emit=False,
    )
    crm.add("comment", {"ENTITY_TYPE": "contact", "ENTITY_ID": contact, "COMMENT": "Просила перезвонить"}, emit=False)
    run_cli(wired, "backfill")
    hub = wired.hub()
    [client] = hub.find_clients(phone="+79161112233")
    [firm] = hub.find_clients(phone="+74951234567")
    assert client.company_id == firm.id and firm.kind == "company" and firm.name == "ООО Ромашка"
    items = {(i.kind, i.channel): i for i in hub.timeline(client.id)}
    deal = items[("deal", None)]
    assert (deal.fields["title"], deal.fields["status"], deal.fields["amount"]) == ("Поставка", "won", "5000")
    call = items[("interaction", "call")]
    assert (call.fields["direction"], call.fields["duration_s"]) == ("out", 300.0)
    assert items[("interaction", "note")].fields["body"] == "Просила перезвонить"
