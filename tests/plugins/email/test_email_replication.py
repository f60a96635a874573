"""An email read from the mailbox reaches the CRM through the core: a Bitrix24 email activity on the contact."""

from __future__ import annotations

from typing import Any

from email_testing import message

from hub.testing import serve_asgi
from tests.conftest import wait_for


def test_an_email_from_dovecot_becomes_a_bitrix24_email_activity(wired: Any) -> None:
    import crm_hub_plugins.bitrix24.plugin
    import crm_hub_plugins.email.plugin
    from crm_hub_plugins.bitrix24.sandbox import create_app

    app = create_app(rate=1000, burst=1000)
    sandbox = app.state.sandbox
    with serve_asgi(app) as base_url:
        for name, value in {
            "WEBHOOK_URL": sandbox.webhook_url(base_url),
            "APPLICATION_TOKEN": sandbox.application_token,
            "RATE_LIMIT": "1000/s burst 1000",
            "RECONCILE_INTERVAL": "3600",
        }.items():
            wired.monkeypatch.setenv(f"HUB_BITRIX24__{name}", value)
        wired.dovecot.append("INBOX", message(subject="Счёт на оплату", body="Пришлите счёт, пожалуйста."))
        hub = wired.backend.hub(
            [("email", crm_hub_plugins.email.plugin), ("bitrix24", crm_hub_plugins.bitrix24.plugin)]
        )
        hub.start("all")
        try:
            crm = sandbox.crm
            wait_for(lambda: any(a["TYPE_ID"] == "4" for a in crm.records["activity"].values()), timeout=30)
        finally:
            hub.stop(grace=5)
    [activity] = [a for a in crm.records["activity"].values() if a["TYPE_ID"] == "4"]
    assert activity["SUBJECT"] == "Счёт на оплату"
    assert activity["COMMUNICATIONS"][0]["VALUE"] == "ivan@client.ru"
    assert activity["DIRECTION"] == "1"  # incoming
    [contact] = crm.records["contact"].values()
    assert activity["OWNER_ID"] == str(contact["ID"])
