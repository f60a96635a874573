"""Shared fixtures of the Bitrix24 tests: the documented payloads and a sandbox portal on a loopback port."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from typing import Any

import pytest

from crm_hub_plugins.bitrix24.client import Bitrix24Client
from crm_hub_plugins.bitrix24.sandbox import Bitrix24Sandbox, create_app
from hub.testing import serve_asgi


@dataclass
class Portal:
    """A running sandbox portal: its state, its base URL and its incoming-webhook URL."""

    sandbox: Bitrix24Sandbox
    base_url: str

    @property
    def webhook_url(self) -> str:
        return self.sandbox.webhook_url(self.base_url)

    def client(self, **options: Any) -> Bitrix24Client:
        options.setdefault("backoff", lambda attempt, retry_after: 0.01)
        options.setdefault("timeout", 5.0)
        return Bitrix24Client(self.webhook_url, **options)


@pytest.fixture(scope="module")
def _shared_portal() -> Iterator[Portal]:
    app = create_app(rate=1000, burst=1000)
    with serve_asgi(app) as base_url:
        yield Portal(app.state.sandbox, base_url)


@pytest.fixture
def portal(_shared_portal: Portal) -> Portal:
    """A fast sandbox (bucket 1000/s, burst 1000), emptied before each test."""
    _shared_portal.sandbox.reset()
    return _shared_portal


@pytest.fixture
def make_portal() -> Iterator[Callable[..., Portal]]:
    """Start a sandbox with its own options (rate limits, clocks, token lifetimes) for one test."""
    with ExitStack() as stack:

        def start(**options: Any) -> Portal:
            app = create_app(**options)
            base_url = stack.enter_context(serve_asgi(app))
            return Portal(app.state.sandbox, base_url)

        yield start


class Wired:
    """Hubs wired to one running sandbox portal through the Bitrix24 plugin (settings from HUB_BITRIX24__*)."""

    def __init__(self, backend: Any, portal: Portal, monkeypatch: pytest.MonkeyPatch) -> None:
        self.backend, self.portal, self.monkeypatch = backend, portal, monkeypatch
        self.env(
            WEBHOOK_URL=portal.webhook_url,
            APPLICATION_TOKEN=portal.sandbox.application_token,
            RATE_LIMIT="1000/s burst 1000",
            RECONCILE_INTERVAL="3600",
        )

    def env(self, **values: str) -> None:
        for name, value in values.items():
            self.monkeypatch.setenv(f"HUB_BITRIX24__{name}", value)

    def use_oauth(self) -> None:
        sandbox = self.portal.sandbox
        self.monkeypatch.delenv("HUB_BITRIX24__WEBHOOK_URL")
        self.env(
            CLIENT_ID=sandbox.client_id,
            CLIENT_SECRET=sandbox.client_secret,
            PORTAL=self.portal.base_url,
            OAUTH_URL=f"{self.portal.base_url}/oauth/token/",
        )

    def hub(self, *extra: tuple[str, Any]) -> Any:
        import crm_hub_plugins.bitrix24.plugin

        return self.backend.hub([("bitrix24", crm_hub_plugins.bitrix24.plugin), *extra])

    @property
    def key(self) -> str:
        return self.portal.base_url.split("://", 1)[1]


@pytest.fixture
def wired(backend: Any, portal: Portal, monkeypatch: pytest.MonkeyPatch) -> Wired:
    return Wired(backend, portal, monkeypatch)


@pytest.fixture
def wired_embedded(embedded: Any, portal: Portal, monkeypatch: pytest.MonkeyPatch) -> Wired:
    return Wired(embedded, portal, monkeypatch)
