"""Shared fixtures of the amoCRM tests: the documented payloads and a running sandbox."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from crm_hub_plugins.amocrm.client import AmoCRMClient
from crm_hub_plugins.amocrm.sandbox import Sandbox, create_app
from hub.testing import serve_asgi

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "amocrm"


def fixture_text(name: str) -> str:
    return (FIXTURES / name).read_text(encoding="utf-8")


def fixture_json(name: str) -> Any:
    return json.loads(fixture_text(name))


class Running:
    """A sandbox served on a loopback port, with its state at hand."""

    def __init__(self, url: str, sandbox: Sandbox) -> None:
        self.url = url
        self.sandbox = sandbox

    def client(self, **kwargs: Any) -> AmoCRMClient:
        return AmoCRMClient(self.url, self.sandbox.long_lived_token, **kwargs)

    def admin(self, action: str, payload: Any = None, method: str = "POST") -> Any:
        response = httpx.request(method, f"{self.url}/_sandbox/{action}", json=payload)
        response.raise_for_status()
        return response.json()


@pytest.fixture
def sandbox() -> Iterator[Running]:
    """A fast sandbox (the rate limit raised so that tests are not paced); webhooks collected in memory."""
    app = create_app(rate_limit=10_000, collect_webhooks=True)
    with serve_asgi(app) as url:
        yield Running(url, app.state.sandbox)


WEBHOOK_SECRET = "amo-webhook-secret-0123456789"


class Connected:
    """Hubs wired to one running sandbox through the amoCRM plugin (settings from HUB_AMOCRM__* variables)."""

    def __init__(self, backend: Any, sandbox: Running, monkeypatch: pytest.MonkeyPatch) -> None:
        self.backend, self.sandbox, self.monkeypatch = backend, sandbox, monkeypatch
        self.env(
            BASE_URL=sandbox.url,
            LONG_LIVED_TOKEN=sandbox.sandbox.long_lived_token,
            WEBHOOK_SECRET=WEBHOOK_SECRET,
            RATE_LIMIT="1000/s burst 1000",
            RECONCILE_INTERVAL="3600",
        )

    def env(self, **values: str) -> None:
        for name, value in values.items():
            self.monkeypatch.setenv(f"HUB_AMOCRM__{name}", value)

    def hub(self, *extra: tuple[str, Any]) -> Any:
        import crm_hub_plugins.amocrm.plugin

        return self.backend.hub([("amocrm", crm_hub_plugins.amocrm.plugin), *extra])

    @property
    def key(self) -> str:
        return self.sandbox.url.split("://", 1)[1]


@pytest.fixture
def connected(backend: Any, sandbox: Running, monkeypatch: pytest.MonkeyPatch) -> Connected:
    return Connected(backend, sandbox, monkeypatch)


@pytest.fixture
def connected_embedded(embedded: Any, sandbox: Running, monkeypatch: pytest.MonkeyPatch) -> Connected:
    return Connected(embedded, sandbox, monkeypatch)
