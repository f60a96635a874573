"""Shared fixtures: a hub on the embedded default and on PostgreSQL + RabbitMQ, each test isolated."""

from __future__ import annotations

import contextlib
import os
import socket
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from hub.core.hub import Hub
from hub.core.plugins import PluginHost
from hub.core.settings import load_settings

PG_URL = os.environ.get("HUB_TEST_POSTGRES", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
AMQP_URL = os.environ.get("HUB_TEST_AMQP", "amqp://guest:guest@127.0.0.1:5672//")
FIXTURES = Path(__file__).resolve().parent / "fixtures"


def _reachable(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False


def production_available() -> bool:
    return _reachable("127.0.0.1", 5432) and _reachable("127.0.0.1", 5672)


def require_production() -> None:
    if not production_available():
        if os.environ.get("CI"):
            pytest.fail("PostgreSQL and RabbitMQ must run in CI (127.0.0.1:5432, :5672)")
        pytest.skip("PostgreSQL or RabbitMQ is not running here")


class Backend:
    """Settings for one isolated hub: its own SQLite file or PostgreSQL schema, its own bus namespace."""

    def __init__(self, kind: str, tmp_path: Path) -> None:
        self.kind = kind
        self.tmp_path = tmp_path
        self.tag = "t" + uuid.uuid4().hex[:12]
        self.hubs: list[Hub] = []
        if kind == "production":
            require_production()
            import psycopg

            self._pg = PG_URL.replace("postgresql+psycopg://", "postgresql://")
            with psycopg.connect(self._pg, autocommit=True) as conn:
                conn.execute(f'CREATE SCHEMA "{self.tag}"')
            self.database_url = f"{PG_URL}?options=-csearch_path%3D{self.tag}"
            self.bus_url = AMQP_URL
        else:
            self.database_url = f"sqlite:///{tmp_path / 'hub.db'}"
            self.bus_url = "memory://"

    def env(self) -> dict[str, str]:
        return {
            "HUB_DATABASE_URL": self.database_url,
            "HUB_BUS_URL": self.bus_url,
            "HUB_BUS_NAMESPACE": self.tag,
            "HUB_DATA_DIR": str(self.tmp_path),
        }

    def settings(self, **overrides: Any) -> Any:
        values: dict[str, Any] = {
            "database_url": self.database_url,
            "bus_url": self.bus_url,
            "bus_namespace": self.tag,
            "data_dir": self.tmp_path,
            "partitions": 4,
        }
        values.update(overrides)
        return load_settings(**values)

    def hub(self, plugins: list[tuple[str, Any]] = (), **overrides: Any) -> Hub:  # type: ignore[assignment]
        hub = Hub(self.settings(**overrides), PluginHost(autoload=False, extra=plugins))
        hub.migrate()
        self.hubs.append(hub)
        return hub

    def close(self) -> None:
        for hub in self.hubs:
            if hub.started:
                hub.stop(grace=5)
            else:
                hub.store.dispose()
        if self.kind == "production":
            import psycopg
            from kombu import Connection

            with psycopg.connect(self._pg, autocommit=True) as conn:
                conn.execute(f'DROP SCHEMA IF EXISTS "{self.tag}" CASCADE')
            with Connection(self.bus_url) as conn:
                channel = conn.channel()
                for hub in self.hubs:
                    for sink in hub.sinks:
                        for queue in hub.bus.sink_queues(sink):
                            try:
                                queue(channel).delete()
                            except Exception:
                                channel = conn.channel()
                with contextlib.suppress(Exception):
                    if self.hubs:
                        self.hubs[0].bus.exchange(channel).delete()


@pytest.fixture(params=["embedded", "production"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    b = Backend(request.param, tmp_path)
    try:
        yield b
    finally:
        b.close()


@pytest.fixture
def embedded(tmp_path: Path) -> Iterator[Backend]:
    b = Backend("embedded", tmp_path)
    try:
        yield b
    finally:
        b.close()


@pytest.fixture
def production(tmp_path: Path) -> Iterator[Backend]:
    b = Backend("production", tmp_path)
    try:
        yield b
    finally:
        b.close()


def wait_for(condition: Callable[[], Any], timeout: float = 20.0, interval: float = 0.02) -> Any:
    """Poll ``condition`` until it returns something truthy; fail the test with a clear message otherwise."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout} s")
        time.sleep(interval)
