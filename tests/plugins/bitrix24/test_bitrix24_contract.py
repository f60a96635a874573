"""crm-hub's standard contract suite against the Bitrix24 sandbox portal, through the plugin's public behaviour."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import crm_hub_plugins.bitrix24.plugin
from crm_hub_plugins.bitrix24.sandbox import create_app
from hub.core.formcodec import encode
from hub.testing import serve_asgi
from hub.testing.contract import ConnectorAdapter, ConnectorContract


class Bitrix24Adapter(ConnectorAdapter):
    name = "bitrix24"
    plugin = crm_hub_plugins.bitrix24.plugin
    custom_field = ("UF_CRM_TARIFF", "Золотой")

    @contextmanager
    def running(self) -> Iterator[dict[str, str]]:
        app = create_app(rate=1000, burst=1000)
        self.sandbox = app.state.sandbox
        with serve_asgi(app) as url:
            yield {
                "HUB_BITRIX24__WEBHOOK_URL": self.sandbox.webhook_url(url),
                "HUB_BITRIX24__APPLICATION_TOKEN": self.sandbox.application_token,
                "HUB_BITRIX24__RATE_LIMIT": "1000/s burst 1000",
                "HUB_BITRIX24__RECONCILE_INTERVAL": "3600",
            }

    def seed_client(self, name: str, phone: str, custom: dict[str, Any] | None = None) -> str:
        first, _, last = name.partition(" ")
        fields = {"NAME": first, "LAST_NAME": last, "PHONE": [{"VALUE": phone}], **(custom or {})}
        return str(self.sandbox.crm.add("contact", fields, emit=False))

    def phones_held(self) -> list[str]:
        contacts = self.sandbox.crm.records["contact"].values()
        return [str(p["VALUE"]) for contact in contacts for p in contact.get("PHONE") or []]

    def webhook_request(self, record_id: str, *, signed: bool) -> tuple[str, bytes, dict[str, str]]:
        token = self.sandbox.application_token if signed else "0" * 32  # another portal's application token
        event = {
            "event": "ONCRMCONTACTADD",
            "data": {"FIELDS": {"ID": record_id}},
            "ts": "1727018926",
            "auth": {"application_token": token, "domain": "example.bitrix24.ru"},
        }
        return "/webhooks/bitrix24", encode(event).encode(), {"content-type": "application/x-www-form-urlencoded"}

    # throttle: not offered. A portal over its request rate answers 503 QUERY_LIMIT_EXCEEDED, and the docs give
    # it no Retry-After (https://apidocs.bitrix24.ru/limits.html); the plugin's own limit tests cover that answer.

    def outage(self, down: bool) -> bool:
        if down:
            self.sandbox.add_fault("status", count=100_000, status=503)
        else:
            with self.sandbox.lock:
                self.sandbox.faults.clear()
        return True


class TestBitrix24Contract(ConnectorContract):
    adapter = Bitrix24Adapter
