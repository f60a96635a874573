"""Bitrix24 → hub in bulk: reconciliation finds what lost events missed, backfill imports 2,500 rows a request."""

from __future__ import annotations

import math
from typing import Any

import pytest
from bitrix24_testing import Wired
from click.testing import CliRunner

from crm_hub_plugins.bitrix24.connection import portals
from crm_hub_plugins.bitrix24.reconcile import PortalReconciler
from hub.cli import build_cli
from hub.core.plugins import PluginHost


def cursor(hub: Any, entity: str) -> Any:
    return PortalReconciler(portals(hub).get()).cursor(entity)


def outcome(summary: Any, entity: str) -> Any:
    [found] = [o for o in summary.outcomes if o.entity == entity]
    return found


def test_reconciliation_catches_a_change_made_while_the_hub_was_down(wired: Wired) -> None:
    first = wired.hub()
    PortalReconciler(portals(first).get()).poll()  # the first run only sets the cursors
    start = cursor(first, "contact")
    assert start is not None
    first.store.dispose()  # the hub is down; Bitrix24's event for this change is lost for good
    wired.portal.sandbox.crm.add(
        "contact", {"NAME": "Пётр", "LAST_NAME": "Сидоров", "PHONE": [{"VALUE": "89165550011"}]}
    )
    second = wired.hub()
    reconciler = PortalReconciler(portals(second).get())
    summary = reconciler.poll()
    assert summary.ok and reconciler.changed("contact") == 1 and outcome(summary, "contact").stored == 1
    [found] = second.find_clients(phone="+79165550011")
    assert found.name == "Сидоров Пётр"
    assert cursor(second, "contact") >= start
    again = PortalReconciler(portals(second).get()).poll()
    assert again.totals()["stored"] == 0 and again.totals()["read"] >= 1  # the overlap re-reads, changes nothing


def test_the_cursor_moves_only_after_the_changes_are_stored(
    wired_embedded: Wired, monkeypatch: pytest.MonkeyPatch
) -> None:
    hub = wired_embedded.hub()
    reconciler = PortalReconciler(portals(hub).get())
    reconciler.poll()
    old = "2020-01-01T00:00:00+00:00"
    hub.state.put(reconciler.cursor_scope, "contact", old)
    wired_embedded.portal.sandbox.crm.seed_contacts(3)

    def broken(*_args: Any, **_kwargs: Any) -> Any:
        raise OSError("database is gone")

    monkeypatch.setattr(hub, "ingest", broken)
    failed = reconciler.poll()
    assert failed.failed == ["contact"] and "database is gone" in (outcome(failed, "contact").error or "")
    assert failed.exit_code == 1
    assert cursor(hub, "contact") == old
    monkeypatch.undo()
    assert outcome(reconciler.poll(), "contact").stored == 3
    assert cursor(hub, "contact") > old


def run_cli(wired: Wired, *args: str, expect_ok: bool = True) -> Any:
    import crm_hub_plugins.bitrix24.plugin

    for name, value in wired.backend.env().items():
        wired.monkeypatch.setenv(name, value)
    host = PluginHost(autoload=False, extra=[("bitrix24", crm_hub_plugins.bitrix24.plugin)])
    result = CliRunner().invoke(build_cli(host), ["bitrix24", *args], obj=host, catch_exceptions=False)
    if expect_ok:
        assert result.exit_code == 0, result.output
    return result


def test_backfill_of_3000_contacts_takes_one_list_request_per_2500(wired_embedded: Wired) -> None:
    sandbox = wired_embedded.portal.sandbox
    sandbox.crm.seed_contacts(3000)
    before = sandbox.requests
    result = run_cli(wired_embedded, "backfill", "--only", "contact")
    assert sandbox.requests - before == math.ceil(3000 / 2500)
    assert "contact: read 3000, changed 3000, unchanged 0, refused 0 - ok" in result.output
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
    crm.add("activity", _call(contact), emit=False)
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


def test_a_failing_entity_does_not_stop_the_others_and_the_backfill_exits_non_zero_naming_it(
    wired_embedded: Wired,
) -> None:
    sandbox = wired_embedded.portal.sandbox
    contact = sandbox.crm.add("contact", {"NAME": "Анна", "PHONE": [{"VALUE": "+79161112233"}]}, emit=False)
    sandbox.crm.add("deal", {"TITLE": "Поставка", "CONTACT_ID": contact}, emit=False)
    sandbox.crm.add("activity", _call(contact), emit=False)
    sandbox.block_method("crm.deal.list", 600)  # the portal's operation time limit on deals only
    result = run_cli(wired_embedded, "backfill", expect_ok=False)
    assert result.exit_code == 1
    assert "deal: read 0" in result.output and "OPERATION_TIME_LIMIT" in result.output
    assert "the backfill of deal failed" in result.output
    assert "contact: read 1, changed 1" in result.output and "activity: read 1, changed 1" in result.output
    hub = wired_embedded.hub()
    [client] = hub.find_clients(phone="+79161112233")
    kinds = [i.kind for i in hub.timeline(client.id)]
    assert kinds == ["interaction"]  # the call arrived; the deal waits for the next run
    reconciler = PortalReconciler(portals(hub).get())
    assert reconciler.cursor("contact") is not None and reconciler.cursor("deal") is None


def _call(contact: int) -> dict[str, Any]:
    return {
        "OWNER_TYPE_ID": 3,
        "OWNER_ID": contact,
        "TYPE_ID": 2,
        "DIRECTION": 2,
        "SUBJECT": "Исходящий звонок",
        "START_TIME": "2025-03-01T10:00:00+03:00",
        "END_TIME": "2025-03-01T10:05:00+03:00",
        "COMMUNICATIONS": [{"VALUE": "+79161112233", "TYPE": "PHONE"}],
    }
