"""The Bitrix24 plugin's hooks: each delegates to the module that does the work."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import structlog

from hub import hookimpl
from hub.core.sources import Poller, SenderCheck

from .cli import bitrix24
from .connection import forget, portals
from .inbound import Inbound
from .offline import OfflineEvents
from .reconcile import PortalReconciler
from .sandbox import create_app
from .settings import Bitrix24Section
from .sink import Bitrix24Sink
from .webhooks import INBOX_KIND, webhook_route

__version__ = "1.0.0"

log = structlog.get_logger("crm_hub_plugins.bitrix24")


@hookimpl
def hub_register_settings(register: Any) -> None:
    register("bitrix24", Bitrix24Section)


@hookimpl
def hub_register_sinks(hub: Any, register: Any) -> None:
    for portal in portals(hub):
        register(Bitrix24Sink(portal))


@hookimpl
def hub_register_routes(hub: Any, register: Any) -> None:
    found = portals(hub)
    configured = any(p.settings.application_token for p in found)
    sender = SenderCheck("auth[application_token]", configured, "set HUB_BITRIX24__APPLICATION_TOKEN")
    register(replace(webhook_route(hub, found), sender=sender))
    if found and not configured:
        # Events from the portal would meet a 404; say so where the operator looks first.
        log.warning(
            "bitrix24.webhook_route_not_mounted",
            detail="POST /webhooks/bitrix24 needs HUB_BITRIX24__APPLICATION_TOKEN; live events are not received",
        )


@hookimpl
def hub_register_inbox_handlers(hub: Any, register: Any) -> None:
    inbound = {p.key: Inbound(p) for p in portals(hub)}
    if inbound:
        register(INBOX_KIND, lambda payload: inbound[payload["portal"]].handle_event(payload))


@hookimpl
def hub_register_listeners(hub: Any, register: Any) -> None:
    for portal in portals(hub):
        register(Poller(f"bitrix24:{portal.key}", PortalReconciler(portal).tick, portal.settings.reconcile_interval))
        if portal.settings.events == "offline":
            offline = OfflineEvents(portal)
            register(Poller(f"bitrix24-offline:{portal.key}", offline.tick, portal.settings.offline_interval))


@hookimpl
def hub_register_commands(register: Any) -> None:
    register(bitrix24)


@hookimpl
def hub_register_sandboxes(register: Any) -> None:
    register("bitrix24", create_app)


@hookimpl
def hub_health(hub: Any) -> dict[str, Any] | None:
    reports = {p.key: p.health() for p in portals(hub)}
    if not reports:
        return None
    order = {"ok": 0, "degraded": 1, "down": 2}
    worst = max((r["status"] for r in reports.values()), key=order.__getitem__)
    return {"status": worst, "portals": reports}


@hookimpl
def hub_shutdown(hub: Any) -> None:
    forget(hub)
