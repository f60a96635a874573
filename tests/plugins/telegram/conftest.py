"""A Telegram Bot API sandbox on a loopback port, and a hub whose bot talks to it."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from crm_hub_plugins.telegram import plugin as telegram_plugin
from crm_hub_plugins.telegram.sandbox import create_app
from hub.testing import serve_asgi


class Sandbox:
    def __init__(self, app: Any, url: str) -> None:
        self.app, self.url, self.bot = app, url, app.state.bot
        self.http = httpx.Client(base_url=url, timeout=10)

    @property
    def token(self) -> str:
        return str(self.bot.token)

    def call(self, method: str, **params: Any) -> httpx.Response:
        return self.http.post(f"/bot{self.token}/{method}", json=params)

    def user_writes(self, user_id: int, **content: Any) -> dict[str, Any]:
        return dict(self.http.post(f"/sandbox/users/{user_id}/messages", json=content).json())

    def sent_to(self, user_id: int) -> list[dict[str, Any]]:
        return list(self.http.get(f"/sandbox/users/{user_id}/sent").json())


@pytest.fixture(scope="module")
def _served() -> Iterator[Sandbox]:
    app = create_app()
    with serve_asgi(app) as url:
        sandbox = Sandbox(app, url)
        yield sandbox
        sandbox.http.close()


@pytest.fixture
def sandbox(_served: Sandbox) -> Sandbox:
    _served.http.post("/sandbox/reset")
    return _served


@pytest.fixture
def telegram_hub(backend: Any, sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch) -> Any:
    """Build a hub with the Telegram plugin pointed at the sandbox; keywords become ``HUB_TELEGRAM__*``."""

    def build(**settings: Any) -> Any:
        values = {"bot_token": sandbox.token, "api_base": sandbox.url, "poll_timeout": 0, **settings}
        for name, value in values.items():
            monkeypatch.setenv(f"HUB_TELEGRAM__{name.upper()}", str(value))
        return backend.hub([("telegram", telegram_plugin)])

    return build
