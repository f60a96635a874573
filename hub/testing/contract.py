"""The standard contract suite: what every connector must do, run against any plugin through a small adapter.

A plugin opts in with a :class:`ConnectorAdapter` (start its sandbox, seed a record, the ``HUB_*`` settings
that point the hub at the sandbox, what the sandbox holds, a webhook request) and either a test module::

    from hub.testing.contract import ConnectorContract

    class TestContract(ConnectorContract):
        adapter = MyAdapter

or, with the adapter named by an entry point in the group ``hub.contract`` (``my-crm = "hub_my_crm.contract:Adapter"``)
or by its path, ``pytest --pyargs hub.testing.contract --hub-contract my-crm`` (``--hub-contract pkg.mod:Adapter``).

Each test drives the plugin only through its public behaviour: its settings, its registered pollers
(reconciliation), its sink and its webhook route. A check the adapter cannot support (no webhook, no way to make
the sandbox answer 429) is skipped with the reason, never passed silently.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator
from typing import Any, ClassVar

import pytest
from sqlalchemy import func, select

from hub.core import schema as s
from hub.core.events import ClientObservation, SourceRef
from hub.core.sources import Poller

PHONES = ["+79160001101", "+79160001102", "+79160001103"]


class ConnectorAdapter:
    """How the contract suite reaches one connector and its sandbox. Subclass it and fill in the blanks."""

    name: ClassVar[str] = ""
    """The plugin's name: its settings section, the prefix of its sinks (``name:…``) and pollers."""
    plugin: ClassVar[Any] = None
    """The module (or object) holding the plugin's ``@hookimpl`` functions."""
    custom_field: ClassVar[tuple[str, Any] | None] = None
    """``(hub field name, value)`` that :meth:`seed_client` can store as a custom field, or ``None``."""

    @contextlib.contextmanager
    def running(self) -> Iterator[dict[str, str]]:
        """Start the sandbox, yield the ``HUB_*`` settings that point a hub at it, stop it after."""
        raise NotImplementedError
        yield {}  # pragma: no cover

    def seed_client(self, name: str, phone: str, custom: dict[str, Any] | None = None) -> str:
        """Create a contact in the sandbox as a person would; return its id there."""
        raise NotImplementedError

    def phones_held(self) -> list[str]:
        """Every phone of every contact the sandbox holds (a contact created twice shows its phone twice)."""
        raise NotImplementedError

    def webhook_request(self, record_id: str, *, signed: bool) -> tuple[str, bytes, dict[str, str]]:
        """The path, body and headers of the webhook announcing ``record_id``: with the right signature, token
        or secret path, or with a wrong one. Leave it out when the plugin has no webhook (the check is skipped)."""
        raise NotImplementedError

    def throttle(self, retry_after: float) -> bool:
        """Make the sandbox answer its next API request 429 with ``Retry-After``; ``False`` if it cannot."""
        return False

    def outage(self, down: bool) -> bool:
        """Make the sandbox answer every API request 5xx (``down``) or serve again; ``False`` if it cannot."""
        return False


class ConnectorContract:
    """The suite. Subclass it with ``adapter = YourAdapter`` (a class name starting with ``Test``)."""

    __test__ = False
    adapter: ClassVar[type[ConnectorAdapter] | None] = None

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "__test__" not in cls.__dict__:
            cls.__test__ = True

    @pytest.fixture
    def connector(self, request: pytest.FixtureRequest) -> ConnectorAdapter:
        adapter = self.adapter or request.getfixturevalue("hub_contract_adapter")
        if adapter is None:
            pytest.skip("no adapter: give the suite one with --hub-contract NAME or a subclass's `adapter`")
        return adapter()

    @pytest.fixture
    def contract_hub(self, connector: ConnectorAdapter, hub_factory: Callable[..., Any]) -> Iterator[Callable[[], Any]]:
        with connector.running() as env:
            yield lambda: hub_factory([(connector.name, connector.plugin)], env=env)

    # the plugin's own behaviour, reached through its hooks

    @staticmethod
    def reconcile(hub: Any, name: str) -> None:
        """Run once every poller the plugin registers under its name (reconciliation)."""
        found: list[Poller] = []
        hub.plugins.each("hub_register_listeners", hub=hub, register=found.append)
        pollers = [p for p in found if isinstance(p, Poller) and (p.name == name or p.name.startswith(f"{name}:"))]
        assert pollers, f"the {name} plugin registers no poller named {name!r} or {name + ':…'!r}"
        for poller in pollers:
            poller.poll()

    def connected(self, contract_hub: Callable[[], Any], connector: ConnectorAdapter) -> Any:
        """A hub connected to the sandbox whose first reconciliation has run (a connector may only set its
        cursors then: history is what a backfill imports)."""
        hub = contract_hub()
        hub.prepare()
        self.reconcile(hub, connector.name)
        return hub

    @staticmethod
    def replicated(contract_hub: Callable[[], Any], row: str, name: str, phone: str) -> Any:
        """A running hub that has taken in one client from elsewhere and delivered it to every sink."""
        hub = contract_hub()
        hub.start("all")
        hub.ingest(
            ClientObservation(source=SourceRef(system="contract", entity="row", id=row), name=name, phones=[phone])
        )
        assert hub.wait_idle(30)
        return hub

    @staticmethod
    def sink(hub: Any, name: str) -> Any:
        names = [n for n in hub.sinks if n == name or n.startswith(f"{name}:")]
        assert names, f"the {name} plugin registered no sink named {name!r} or {name + ':…'!r}"
        return hub.sinks[names[0]]

    @staticmethod
    def clients_with(hub: Any, phone: str) -> list[Any]:
        return list(hub.find_clients(phone=phone))

    @staticmethod
    def count(hub: Any, table: Any) -> int:
        with hub.store.read() as conn:
            return int(conn.execute(select(func.count()).select_from(table)).scalar_one())

    # the contract

    def test_a_record_read_twice_is_one_client(self, connector: ConnectorAdapter, contract_hub: Any) -> None:
        hub = self.connected(contract_hub, connector)
        for i, phone in enumerate(PHONES):
            connector.seed_client(f"Контракт {i}", phone)
        self.reconcile(hub, connector.name)
        self.reconcile(hub, connector.name)
        for phone in PHONES:
            [client] = self.clients_with(hub, phone)
            assert any(r.system == connector.name for r in client.refs)

    def test_a_client_delivered_twice_is_created_once(
        self, connector: ConnectorAdapter, contract_hub: Any, hub_recorder: Any
    ) -> None:
        hub = self.replicated(contract_hub, "1", "Олег Контрактов", PHONES[0])
        event = next(e for e in hub_recorder(hub) if e.type == "client.changed")
        self.sink(hub, connector.name).deliver([event])  # a redelivery after a crash
        assert connector.phones_held().count(PHONES[0]) == 1

    def test_the_hubs_own_write_read_back_is_no_echo(
        self, connector: ConnectorAdapter, contract_hub: Any, hub_recorder: Any
    ) -> None:
        hub = self.replicated(contract_hub, "2", "Ирина Эхова", PHONES[1])
        assert connector.phones_held().count(PHONES[1]) == 1
        hub.stop(grace=5)
        before = [e for e in hub_recorder(hub) if e.type.startswith("client.")]
        self.reconcile(hub, connector.name)
        after = [e for e in hub_recorder(hub) if e.type.startswith("client.")]
        [client] = self.clients_with(hub, PHONES[1])
        assert [e.type for e in after[len(before) :]] == [], "reading back the hub's own write emitted events"
        assert client.name == "Ирина Эхова"
        assert connector.phones_held().count(PHONES[1]) == 1

    def test_a_change_that_failed_to_store_is_read_again(
        self, connector: ConnectorAdapter, contract_hub: Any, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        hub = self.connected(contract_hub, connector)
        connector.seed_client("Пётр Курсоров", PHONES[2])

        def broken(*_args: Any, **_kwargs: Any) -> Any:
            raise OSError("the database is gone")

        monkeypatch.setattr(hub, "ingest", broken)
        monkeypatch.setattr(hub, "ingest_many", broken)
        with contextlib.suppress(Exception):
            self.reconcile(hub, connector.name)
        monkeypatch.undo()
        assert self.clients_with(hub, PHONES[2]) == []
        self.reconcile(hub, connector.name)  # the cursor did not move past what was not stored
        [client] = self.clients_with(hub, PHONES[2])
        assert any(r.system == connector.name for r in client.refs)

    def test_custom_fields_are_kept(self, connector: ConnectorAdapter, contract_hub: Any) -> None:
        if connector.custom_field is None:
            pytest.skip(f"the {connector.name} adapter names no custom field")
        field, value = connector.custom_field
        hub = self.connected(contract_hub, connector)
        connector.seed_client("Анна Полева", PHONES[0], custom={field: value})
        self.reconcile(hub, connector.name)
        [client] = self.clients_with(hub, PHONES[0])
        assert client.fields.get(field) == value

    def test_a_429_is_waited_out_as_retry_after_says(self, connector: ConnectorAdapter, contract_hub: Any) -> None:
        hub = self.connected(contract_hub, connector)
        connector.seed_client("Вера Терпелива", PHONES[1])
        retry_after = 1.0
        if not connector.throttle(retry_after):
            pytest.skip(f"the {connector.name} sandbox cannot be made to answer 429")
        started = time.monotonic()
        with contextlib.suppress(Exception):  # a poller may give up this round and leave the change for the next
            self.reconcile(hub, connector.name)
        if not self.clients_with(hub, PHONES[1]):
            self.reconcile(hub, connector.name)
        waited = time.monotonic() - started
        assert waited >= retry_after * 0.95, "the next request did not wait for Retry-After"
        assert waited < retry_after + 30, f"asked to wait {retry_after} s, the connector took {waited:.0f} s"
        assert len(self.clients_with(hub, PHONES[1])) == 1

    def test_an_outage_is_retried_then_dead_lettered_and_replayed_once(
        self, connector: ConnectorAdapter, contract_hub: Any, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setenv("HUB_SINK__MAX_ATTEMPTS", "2")
        monkeypatch.setenv("HUB_SINK__BACKOFF_BASE", "0.05")
        hub = contract_hub()
        if not connector.outage(True):
            pytest.skip(f"the {connector.name} sandbox cannot be made to fail")
        hub.start("all")
        hub.ingest(
            ClientObservation(
                source=SourceRef(system="contract", entity="row", id="3"), name="Олег Перебоев", phones=[PHONES[2]]
            )
        )
        deadline = time.monotonic() + 60
        while hub.dlq.count() == 0 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert hub.dlq.count() == 1, "the failed delivery was not dead-lettered after its attempts"
        assert connector.phones_held().count(PHONES[2]) == 0
        connector.outage(False)
        assert hub.dlq.replay_all() == 1
        assert hub.wait_idle(30)
        assert connector.phones_held().count(PHONES[2]) == 1
        assert hub.dlq.count() == 0

    def test_a_webhook_without_its_signature_is_refused_and_stores_nothing(
        self, connector: ConnectorAdapter, contract_hub: Any
    ) -> None:
        if type(connector).webhook_request is ConnectorAdapter.webhook_request:
            pytest.skip(f"the {connector.name} plugin has no webhook route")
        from fastapi.testclient import TestClient

        from hub.web.app import create_app

        record = connector.seed_client("Глеб Подписной", PHONES[2])
        hub = contract_hub()
        hub.prepare()
        with TestClient(create_app(hub), base_url="http://127.0.0.1") as http:
            path, body, headers = connector.webhook_request(record, signed=False)
            refused = http.post(path, content=body, headers=headers)
            assert refused.status_code in (401, 403, 404), refused.text  # 404: a wrong secret path
            assert self.count(hub, s.inbox) == 0 and self.clients_with(hub, PHONES[2]) == []
            path, body, headers = connector.webhook_request(record, signed=True)
            accepted = http.post(path, content=body, headers=headers)
            assert 200 <= accepted.status_code < 300, accepted.text
        assert self.count(hub, s.inbox) + self.count(hub, s.clients) > 0


class TestConnectorContract(ConnectorContract):
    """The suite as a test module of its own, for ``pytest --pyargs hub.testing.contract --hub-contract NAME``."""


def load_adapter(name: str) -> type[ConnectorAdapter]:
    """The adapter named by an entry point in the group ``hub.contract``, or by ``package.module:Class``."""
    import importlib
    from importlib.metadata import entry_points

    for point in entry_points(group="hub.contract"):
        if point.name == name:
            return point.load()
    module, sep, attr = name.partition(":")
    if not sep:
        raise pytest.UsageError(f"--hub-contract {name!r}: no entry point of that name in the group hub.contract")
    return getattr(importlib.import_module(module), attr)


__all__ = ["ConnectorAdapter", "ConnectorContract", "load_adapter"]
