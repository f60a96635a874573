"""Readiness that means it: the database takes a write, the bus answers, the relay moves, and every account
that is down is named.

Plugins feed account health two ways: the ``hub_health`` hook (one report per plugin, accounts nested in it)
and ``health_providers(hub).register(name, provider)`` for things with their own life (one connected account,
one listener). A provider returns ``{"status": "ok"|"degraded"|"down", ...}`` or None.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import structlog
from sqlalchemy import func, select

from hub.core import schema as s

if TYPE_CHECKING:
    from hub.core.hub import Hub

log = structlog.get_logger("hub.readiness")
HealthProvider = Callable[[], dict[str, Any] | None]
PROBE_SCOPE = "hub.readiness"
DATABASE_CHECK_EVERY = 1.0
BUS_CHECK_EVERY = 5.0  # seconds a bus check is reused: /readyz may be polled every second by many probes


class HealthProviders:
    """Named health reports the core asks for on every readiness check; one registry per hub."""

    def __init__(self) -> None:
        self._providers: dict[str, HealthProvider] = {}
        self._lock = threading.Lock()

    def register(self, name: str, provider: HealthProvider) -> None:
        """Add or replace the provider called ``name`` (``"amocrm:acme.amocrm.ru"``)."""
        with self._lock:
            self._providers[name] = provider

    def unregister(self, name: str) -> None:
        with self._lock:
            self._providers.pop(name, None)

    def reports(self) -> dict[str, dict[str, Any]]:
        with self._lock:
            providers = dict(self._providers)
        found: dict[str, dict[str, Any]] = {}
        for name, provider in providers.items():
            try:
                report = provider()
            except Exception as exc:  # a failing provider is a down account, not a failed probe
                report = {"status": "down", "error": f"{type(exc).__name__}: {exc}"}
            if report is not None:
                found[name] = report
        return found


def health_providers(hub: Hub) -> HealthProviders:
    """The hub's registry of health providers (made on first use)."""
    registry: HealthProviders = hub.runtime("hub.health_providers", HealthProviders)
    return registry


def down_parts(name: str, report: Any) -> Iterator[str]:
    """Paths of every nested report that says ``down`` (``bitrix24/portals/acme.bitrix24.ru``)."""
    if not isinstance(report, dict):
        return
    nested = False
    for key, value in report.items():
        if isinstance(value, dict):
            for found in down_parts(f"{name}/{key}", value):
                nested = True
                yield found
    if report.get("status") == "down" and not nested:
        yield name


class Readiness:
    """The checks behind ``/readyz`` (web role) and the probe port of the other roles."""

    def __init__(self, hub: Hub, *, relay_stuck_after: float = 60.0) -> None:
        self.hub = hub
        self.relay_stuck_after = relay_stuck_after
        self._bus_checked = -BUS_CHECK_EVERY
        self._bus_problem: str | None = None
        self._bus_lock = threading.Lock()
        self._was_ready: bool | None = None
        self._db_checked = -DATABASE_CHECK_EVERY
        self._db_problem: str | None = None
        self._db_lock = threading.Lock()

    def database(self) -> str | None:
        """None when a write commits; else why not (disk full, read-only, unreachable). A result is reused for
        a second, so frequent probes do not queue writes behind a bulk import."""
        with self._db_lock:
            if time.monotonic() - self._db_checked < DATABASE_CHECK_EVERY:
                return self._db_problem
            try:
                self.hub.state.put(PROBE_SCOPE, "write_probe", {"at": datetime.now(UTC).isoformat()})
                self._db_problem = None
            except Exception as exc:
                self._db_problem = _short(exc)
            self._db_checked = time.monotonic()
            return self._db_problem

    def bus(self) -> str | None:
        if not self.hub.bus.durable:
            return None
        with self._bus_lock:
            if time.monotonic() - self._bus_checked < BUS_CHECK_EVERY:
                return self._bus_problem
            from hub.core.preflight import StartupError, check_bus

            try:
                check_bus(self.hub.bus.url, timeout=2.0)
                self._bus_problem = None
            except StartupError as exc:
                self._bus_problem = str(exc)
            self._bus_checked = time.monotonic()
            return self._bus_problem

    def relay(self) -> str | None:
        """The relay of this process (if it runs one) went round lately, and on a broker no outbox row has
        waited longer than ``relay_stuck_after`` (whichever process should publish it). On the embedded bus
        a row stays pending until every sink has it, so there its age would tell of sinks, not the relay."""
        if self.hub.started and self.hub.role in ("all", "worker"):
            age = time.monotonic() - self.hub.relay.last_round
            if age > self.relay_stuck_after:
                return f"the relay has not completed a round for {age:.0f} s"
        if not self.hub.bus.durable:
            return None
        try:
            with self.hub.store.read() as conn:
                oldest = conn.execute(
                    select(func.min(s.outbox.c.created_at)).where(s.outbox.c.relayed.is_(False))
                ).scalar()
        except Exception as exc:
            return _short(exc)
        if oldest is None:
            return None
        if oldest.tzinfo is None:
            oldest = oldest.replace(tzinfo=UTC)
        age = (datetime.now(UTC) - oldest).total_seconds()
        if age > self.relay_stuck_after:
            return f"events wait {age:.0f} s in the outbox: no relay is publishing (is a worker running?)"
        return None

    def report(self) -> dict[str, Any]:
        """``{"ready", "checks": {name: "ok" | problem}, "database": bool, "plugins", "accounts", "down": [...]}``."""
        checks = {"database": self.database(), "bus": self.bus(), "relay": self.relay()}
        health = self.hub.health()
        accounts = health_providers(self.hub).reports()
        down = [p for name, report in health["plugins"].items() for p in down_parts(name, report)]
        down += [p for name, report in accounts.items() for p in down_parts(name, report)]
        failed = {name: problem for name, problem in checks.items() if problem}
        ready = not failed and not down
        if ready != self._was_ready:  # log changes, not every probe
            if ready:
                log.info("ready")
            else:
                log.warning("not ready", failed=failed or None, down=down or None)
            self._was_ready = ready
        return {
            "ready": ready,
            "checks": {name: problem or "ok" for name, problem in checks.items()},
            "database": checks["database"] is None,
            "plugins": health["plugins"],
            "accounts": accounts,
            "down": down,
        }


def _short(exc: BaseException) -> str:
    text = str(getattr(exc, "orig", None) or exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0][:200] if text else ''}"
