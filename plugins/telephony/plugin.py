"""The telephony plugin's hooks: Asterisk AMI, Mango Office, Zadarma and the generic form in; screen pop,
click-to-call and call statistics out. Each hook delegates to the modules beside it."""

from __future__ import annotations

from typing import Any

from hub import hookimpl
from hub.core.sources import Listener, Poller

from . import api, cli, webhooks
from .intake import EVENT_KIND, OBSERVATIONS_KIND
from .runtime import forget, telephony
from .sandbox import create_app
from .settings import TelephonySettings


@hookimpl
def hub_register_settings(register: Any) -> None:
    register("telephony", TelephonySettings)


@hookimpl
def hub_register_routes(hub: Any, register: Any) -> None:
    rt = telephony(hub)
    for route in [*webhooks.routes(rt), *api.routes(rt)]:
        register(route)


@hookimpl
def hub_register_inbox_handlers(hub: Any, register: Any) -> None:
    rt = telephony(hub)
    register(EVENT_KIND, rt.intake.handle_event)
    register(OBSERVATIONS_KIND, rt.intake.apply_parked)


@hookimpl
def hub_register_listeners(hub: Any, register: Any) -> None:
    rt = telephony(hub)
    if rt.settings.ami.host:
        listener = rt.ami_listener()
        register(Listener("telephony:ami", listener.run))
        register(Poller("telephony:ami-stale-calls", listener.expire, interval=300.0, run_at_start=False))
    register(Poller("telephony:old-call-events", rt.intake.forget_old_calls_now, interval=3600.0))
    if rt.settings.zadarma.secret.get_secret_value():
        register(Poller("telephony:zadarma-replay-marks", rt.zadarma_replays.forget_old_now, interval=3600.0))


@hookimpl
def hub_register_commands(register: Any) -> None:
    for command in cli.COMMANDS:
        register(command)


@hookimpl
def hub_register_sandboxes(register: Any) -> None:
    register("telephony", create_app)


@hookimpl
def hub_health(hub: Any) -> dict[str, Any]:
    return telephony(hub).health()


@hookimpl
def hub_shutdown(hub: Any) -> None:
    forget(hub)
