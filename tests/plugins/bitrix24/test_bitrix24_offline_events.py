"""Behind NAT: with HUB_BITRIX24__EVENTS=offline the hub fetches the portal's offline queue instead of webhooks."""

from __future__ import annotations

from typing import Any

from bitrix24_testing import Wired
from click.testing import CliRunner
from sqlalchemy import func, select

from crm_hub_plugins.bitrix24.connection import portals
from crm_hub_plugins.bitrix24.offline import OfflineEvents
from hub.cli import build_cli
from hub.core import schema as s
from hub.core.plugins import PluginHost


def inbox_count(hub: Any) -> int:
    with hub.store.read() as conn:
        return int(conn.execute(select(func.count()).select_from(s.inbox)).scalar_one())


def test_offline_events_are_bound_fetched_stored_then_cleared(wired_embedded: Wired) -> None:
    import crm_hub_plugins.bitrix24.plugin

    wired_embedded.env(EVENTS="offline")
    wired_embedded.monkeypatch.delenv("HUB_BITRIX24__APPLICATION_TOKEN")  # no inbound route needed
    for name, value in wired_embedded.backend.env().items():
        wired_embedded.monkeypatch.setenv(name, value)
    host = PluginHost(autoload=False, extra=[("bitrix24", crm_hub_plugins.bitrix24.plugin)])
    result = CliRunner().invoke(build_cli(host), ["bitrix24", "bind"], obj=host)
    assert result.exit_code == 0 and "offline queue" in result.output, result.output
    sandbox = wired_embedded.portal.sandbox
    assert sandbox.bindings and all(b["offline"] == 1 for b in sandbox.bindings)
    for n in range(60):  # more than one page
        sandbox.crm.add("contact", {"NAME": f"Иван {n}", "PHONE": [{"VALUE": f"+7916{n:07d}"}]})
    assert len(sandbox.offline) >= 60
    hub = wired_embedded.hub()
    reader = OfflineEvents(portals(hub).get())
    assert reader.drain() == 60
    assert inbox_count(hub) == 60 and sandbox.offline == []  # cleared only after being stored
    assert reader.drain() == 0


def test_a_page_fetched_but_not_cleared_is_fetched_again_and_stored_once(wired_embedded: Wired) -> None:
    wired_embedded.env(EVENTS="offline")
    sandbox = wired_embedded.portal.sandbox
    sandbox.bindings.append({"id": 1, "event": "ONCRMCONTACTADD", "handler": "offline", "auth_type": "0", "offline": 1})
    sandbox.crm.add("contact", {"NAME": "Пётр"})
    hub = wired_embedded.hub()
    portal = portals(hub).get()
    first = portal.client.call("event.offline.get", {"clear": 0})  # a crash after this, before clearing
    portal.store_token("offline_process_id", first["process_id"])
    assert OfflineEvents(portal).drain() == 1 and sandbox.offline == []
