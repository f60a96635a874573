"""The amoCRM plugin's hooks: each delegates to the module that does the work."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from hub import hookimpl
from hub.core.sources import Poller, SenderCheck

from .cli import amocrm
from .connection import accounts, forget
from .echo import own_write
from .inbound import Inbound
from .sandbox import create_app
from .settings import AmoCRMSection
from .sink import AmoCRMSink
from .webhooks import INBOX_KIND, webhook_route

__version__ = "1.0.0"


@hookimpl
def hub_register_settings(register: Any) -> None:
    register("amocrm", AmoCRMSection)


@hookimpl
def hub_register_sinks(hub: Any, register: Any) -> None:
    for account in accounts(hub):
        register(AmoCRMSink(account))


@hookimpl
def hub_register_routes(hub: Any, register: Any) -> None:
    secrets = {a.key: a.settings.webhook_secret.get_secret_value() for a in accounts(hub) if a.settings.webhook_secret}
    sender = SenderCheck("the secret webhook path", bool(secrets), "set HUB_AMOCRM__WEBHOOK_SECRET")
    route = webhook_route(hub, secrets, is_echo=lambda key, hint: own_write(accounts(hub).get(key), hint))
    register(replace(route, sender=sender))


@hookimpl
def hub_register_inbox_handlers(hub: Any, register: Any) -> None:
    inbound = {a.key: Inbound(a) for a in accounts(hub)}
    if inbound:
        register(INBOX_KIND, lambda payload: inbound[payload["account"]].handle_hint(payload))


@hookimpl
def hub_register_listeners(hub: Any, register: Any) -> None:
    for account in accounts(hub):
        register(Poller(f"amocrm:{account.key}", Inbound(account).poll, account.settings.reconcile_interval))


@hookimpl
def hub_register_commands(register: Any) -> None:
    register(amocrm)


@hookimpl
def hub_register_sandboxes(register: Any) -> None:
    register("amocrm", create_app)


@hookimpl
def hub_health(hub: Any) -> dict[str, Any] | None:
    reports = {a.key: a.health() for a in accounts(hub)}
    if not reports:
        return None
    order = {"ok": 0, "degraded": 1, "down": 2}
    worst = max((r["status"] for r in reports.values()), key=order.__getitem__)
    return {"status": worst, "accounts": reports}


@hookimpl
def hub_shutdown(hub: Any) -> None:
    forget(hub)
