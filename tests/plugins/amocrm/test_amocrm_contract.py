"""crm-hub's standard contract suite against the amoCRM sandbox, through the plugin's public behaviour."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
from amocrm_testing import WEBHOOK_SECRET

import crm_hub_plugins.amocrm.plugin
from crm_hub_plugins.amocrm.sandbox import ERROR_429, create_app
from hub.testing import serve_asgi
from hub.testing.contract import ConnectorAdapter, ConnectorContract

FORM = {"content-type": "application/x-www-form-urlencoded"}


class AmoCRMAdapter(ConnectorAdapter):
    name = "amocrm"
    plugin = crm_hub_plugins.amocrm.plugin
    # custom_field: not offered; the plugin maps a contact's PHONE, EMAIL and POSITION fields, no others yet.

    @contextmanager
    def running(self) -> Iterator[dict[str, str]]:
        app = create_app(rate_limit=10_000, collect_webhooks=True)
        self.sandbox = app.state.sandbox
        with serve_asgi(app) as url:
            self.url = url
            yield {
                "HUB_AMOCRM__BASE_URL": url,
                "HUB_AMOCRM__LONG_LIVED_TOKEN": self.sandbox.long_lived_token,
                "HUB_AMOCRM__WEBHOOK_SECRET": WEBHOOK_SECRET,
                "HUB_AMOCRM__RATE_LIMIT": "1000/s burst 1000",
                "HUB_AMOCRM__RECONCILE_INTERVAL": "3600",
            }

    def seed_client(self, name: str, phone: str, custom: dict[str, Any] | None = None) -> str:
        contact = {"name": name, "custom_fields_values": [{"field_code": "PHONE", "values": [{"value": phone}]}]}
        answer = httpx.post(
            f"{self.url}/api/v4/contacts",
            json=[contact],
            headers={"Authorization": f"Bearer {self.sandbox.long_lived_token}"},
        )
        answer.raise_for_status()
        self.hooks = {str(c["id"]): self.sandbox.sent_webhooks[-1].body for c in answer.json()["_embedded"]["contacts"]}
        return next(iter(self.hooks))

    def phones_held(self) -> list[str]:
        return [
            str(value["value"])
            for contact in self.sandbox.account.records["contacts"].values()
            for cf in contact.get("custom_fields_values") or []
            if cf.get("field_code") == "PHONE"
            for value in cf.get("values") or []
        ]

    def webhook_request(self, record_id: str, *, signed: bool) -> tuple[str, bytes, dict[str, str]]:
        secret = WEBHOOK_SECRET if signed else "not-the-secret-0123456789"  # amoCRM signs nothing: a secret path
        return f"/webhooks/amocrm/{secret}", self.hooks[record_id].encode(), FORM

    def throttle(self, retry_after: float) -> bool:
        body = {**ERROR_429, "retry_after": retry_after}
        fault = {"kind": "status", "status": 429, "remaining": 1, "body": body, "headers": {"Retry-After": "1"}}
        httpx.post(f"{self.url}/_sandbox/faults", json=fault).raise_for_status()
        return True

    def outage(self, down: bool) -> bool:
        if down:
            httpx.post(f"{self.url}/_sandbox/faults", json={"kind": "5xx", "status": 503}).raise_for_status()
        else:
            httpx.delete(f"{self.url}/_sandbox/faults").raise_for_status()
        return True


class TestAmoCRMContract(ConnectorContract):
    adapter = AmoCRMAdapter
