"""crm-hub's pytest plugin (entry point ``pytest11``): fixtures for testing a plugin on an isolated hub.

Installed with crm-hub, so a plugin's own tests get them without a conftest:

- ``hub_factory(plugins, env=None, **settings)``: a hub on the embedded default (its own SQLite file and bus
  namespace under the test's temporary directory) with the given ``(name, plugin)`` pairs loaded; ``env`` sets
  ``HUB_*`` variables for the test (a plugin's settings, say). Every hub it made is stopped after the test.
- ``hub_recorder(hub)``: every event the hub has emitted so far, oldest first (what sinks receive).
- ``serve_asgi`` (from :mod:`hub.testing`) serves a sandbox or the hub's web app on a free loopback port.
- ``--hub-contract NAME``: run the standard contract suite (:mod:`hub.testing.contract`) against the adapter of a
  plugin (``pytest --pyargs hub.testing.contract --hub-contract NAME``); ``hub_contract_adapter`` is that class.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from hub.core import schema as s
from hub.core.events import Event
from hub.core.hub import Hub
from hub.core.plugins import PluginHost
from hub.core.settings import load_settings


@pytest.fixture
def hub_factory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[..., Hub]]:
    made: list[Hub] = []

    def build(plugins: Sequence[tuple[str, Any]] = (), env: dict[str, str] | None = None, **settings: Any) -> Hub:
        for key, value in (env or {}).items():
            monkeypatch.setenv(key, value)
        folder = tmp_path / f"hub{len(made)}"
        folder.mkdir()
        values: dict[str, Any] = {
            "database_url": f"sqlite:///{folder / 'hub.db'}",
            "bus_url": "memory://",
            "bus_namespace": "t" + uuid.uuid4().hex[:12],
            "data_dir": folder,
            **settings,
        }
        hub = Hub(load_settings(**values), PluginHost(autoload=False, extra=list(plugins)))
        hub.migrate()
        made.append(hub)
        return hub

    yield build
    for hub in made:
        if hub.started:
            hub.stop(grace=5)
        else:
            hub.store.dispose()


@pytest.fixture
def hub_recorder() -> Callable[[Hub], list[Event]]:
    def events(hub: Hub) -> list[Event]:
        with hub.store.read() as conn:
            rows = conn.execute(select(s.outbox.c.payload).order_by(s.outbox.c.id)).all()
        return [Event.model_validate_json(r.payload) for r in rows]

    return events


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.getgroup("crm-hub").addoption(
        "--hub-contract",
        default=None,
        metavar="NAME",
        help="run the standard contract suite (hub.testing.contract) against the adapter of this plugin: an "
        "entry point name in the group hub.contract, or package.module:Class",
    )


@pytest.fixture
def hub_contract_adapter(request: pytest.FixtureRequest) -> Any:
    """The adapter class named by ``--hub-contract``, or ``None``."""
    name = request.config.getoption("--hub-contract")
    if not name:
        return None
    from hub.testing.contract import load_adapter

    return load_adapter(name)
