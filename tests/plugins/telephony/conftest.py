"""Shared fixtures: the recorded PBX payloads in tests/fixtures/telephony and a clock that ticks a second a read."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from crm_hub_plugins.telephony import plugin as telephony_plugin
from crm_hub_plugins.telephony.sandbox import AmiEvent, AMISandbox, load_ami_session
from hub.core.events import ItemView
from hub.core.hub import Hub

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "telephony"
AMI_SESSIONS = sorted(p.stem for p in (FIXTURES / "ami").glob("*.json") if p.stem != "expected")


def ami_session(name: str) -> list[AmiEvent]:
    return load_ami_session(FIXTURES / "ami" / f"{name}.json")


def ticking_clock(start: datetime = datetime(2025, 11, 17, 7, 0, tzinfo=UTC)) -> Callable[[], datetime]:
    seconds = itertools.count()
    return lambda: start + timedelta(seconds=next(seconds))


@pytest.fixture
def clock() -> Callable[[], datetime]:
    return ticking_clock()


# --- a hub with the telephony plugin --------------------------------------------------------------------------

# secrets of at least 16 characters, as the hub requires (the recorded Zadarma fixture, signed with 'test-secret',
# is checked as it was recorded in test_zadarma.py; webhooks into a hub are signed again with this secret)
MANGO_KEY, MANGO_SALT = "vpbx-key-1", "vpbx-salt-0123456789"
ZADARMA_KEY, ZADARMA_SECRET = "zd-key", "zadarma-secret-0123456789"


@pytest.fixture
def telephony_hub(backend: Any, monkeypatch: pytest.MonkeyPatch) -> Callable[..., Hub]:
    """Build a hub on ``backend`` with the telephony plugin; keyword arguments become ``HUB_TELEPHONY__*``."""

    def build(*, plugins: Iterable[tuple[str, Any]] = (), **settings: Any) -> Hub:
        values = {
            "mango__api_key": MANGO_KEY,
            "mango__api_salt": MANGO_SALT,
            "zadarma__key": ZADARMA_KEY,
            "zadarma__secret": ZADARMA_SECRET,
            **settings,
        }
        for name, value in values.items():
            monkeypatch.setenv(f"HUB_TELEPHONY__{name.upper()}", str(value))
        return backend.hub([("telephony", telephony_plugin), *plugins])

    return build


def ami_settings(sandbox: AMISandbox) -> dict[str, Any]:
    return {
        "ami__host": "127.0.0.1",
        "ami__port": sandbox.port,
        "ami__username": sandbox.username,
        "ami__secret": sandbox.secret.get_secret_value(),
        "ami__reconnect_initial": 0.05,
        "ami__reconnect_max": 0.2,
    }


def calls_on_timeline(hub: Hub) -> list[ItemView]:
    return list(hub.iter_items(kind="interaction", channel="call"))


def tasks_on_timeline(hub: Hub) -> list[ItemView]:
    return list(hub.iter_items(kind="task"))
