"""Setting up live events from the docs alone: the sandbox tells its token, bind refuses what would meet a 404."""

from __future__ import annotations

from typing import Any

import httpx
import structlog
from bitrix24_testing import Portal, Wired
from click.testing import CliRunner

from crm_hub_plugins.bitrix24.sandbox import create_app
from hub.cli import build_cli
from hub.core.plugins import PluginHost


def invoke(wired: Wired, *args: str) -> Any:
    import crm_hub_plugins.bitrix24.plugin

    for name, value in wired.backend.env().items():
        wired.monkeypatch.setenv(name, value)
    host = PluginHost(autoload=False, extra=[("bitrix24", crm_hub_plugins.bitrix24.plugin)])
    return CliRunner().invoke(build_cli(host), list(args), obj=host)


def test_the_sandbox_banner_names_its_webhook_url_and_application_token() -> None:
    app = create_app()
    text = app.state.banner("http://127.0.0.1:9001")
    assert f"HUB_BITRIX24__APPLICATION_TOKEN): {app.state.sandbox.application_token}" in text
    assert "HUB_BITRIX24__WEBHOOK_URL): http://127.0.0.1:9001/rest/" in text


def test_sandbox_help_tells_how_to_seed_and_register_webhooks(wired_embedded: Wired) -> None:
    result = invoke(wired_embedded, "sandbox", "bitrix24", "--help")
    assert result.exit_code == 0
    assert "/_sandbox/seed" in result.output and "hub bitrix24 bind" in result.output


def test_bind_refuses_when_the_route_is_not_mounted_and_binds_nothing(wired_embedded: Wired) -> None:
    wired_embedded.monkeypatch.delenv("HUB_BITRIX24__APPLICATION_TOKEN")
    result = invoke(wired_embedded, "bitrix24", "bind", "--url", "https://hub.example/webhooks/bitrix24")
    assert result.exit_code != 0 and "HUB_BITRIX24__APPLICATION_TOKEN" in result.output
    assert wired_embedded.portal.sandbox.bindings == []


def test_a_hub_without_the_token_says_that_the_route_is_not_mounted(wired_embedded: Wired) -> None:
    from hub.web.app import create_app as hub_app

    wired_embedded.monkeypatch.delenv("HUB_BITRIX24__APPLICATION_TOKEN")
    with structlog.testing.capture_logs() as logs:
        hub = wired_embedded.hub()
        hub.prepare()
        hub_app(hub)
    assert any(e["event"] == "bitrix24.webhook_route_not_mounted" for e in logs)


def test_bind_with_the_token_binds_the_events(wired_embedded: Wired) -> None:
    result = invoke(wired_embedded, "bitrix24", "bind", "--url", "https://hub.example/webhooks/bitrix24")
    assert result.exit_code == 0, result.output
    assert wired_embedded.portal.sandbox.bindings


def test_the_sandbox_refuses_an_unfiltered_comment_list_as_the_portal_does(portal: Portal) -> None:
    answer = httpx.post(portal.webhook_url + "crm.timeline.comment.list", json={})
    assert answer.status_code == 400 and answer.json()["error_description"] == "Access denied."


def test_backfill_reads_comments_per_contact_and_company(wired_embedded: Wired) -> None:
    crm = wired_embedded.portal.sandbox.crm
    contact = crm.add("contact", {"NAME": "Иван", "PHONE": [{"VALUE": "+79161234567"}]}, emit=False)
    company = crm.add("company", {"TITLE": "ООО Ромашка"}, emit=False)
    crm.add("comment", {"ENTITY_TYPE": "contact", "ENTITY_ID": contact, "COMMENT": "Просила перезвонить"}, emit=False)
    for n in range(60):  # more than one page on one element
        crm.add("comment", {"ENTITY_TYPE": "company", "ENTITY_ID": company, "COMMENT": f"Заметка {n}"}, emit=False)
    hub = wired_embedded.hub()
    from crm_hub_plugins.bitrix24.connection import portals
    from crm_hub_plugins.bitrix24.reconcile import PortalReconciler

    summary = PortalReconciler(portals(hub).get()).backfill_since()
    [comments] = [o for o in summary.outcomes if o.entity == "timeline_comment"]
    assert (comments.read, comments.stored, comments.ok) == (61, 61, True), summary.lines()
