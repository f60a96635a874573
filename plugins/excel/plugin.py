"""The Excel plugin's hooks: import (CLI and watch folder), export (CLI and HTTP), and the INN identity key."""

from __future__ import annotations

from typing import Any

from hub import hookimpl
from hub.core.sources import Poller

from . import api, cli, watch
from .mapping import checked_inn
from .settings import ExcelSettings

__version__ = "1.0.0"


@hookimpl
def hub_register_settings(register: Any) -> None:
    register("excel", ExcelSettings)


@hookimpl
def hub_register_identity_keys(register: Any) -> None:
    register("inn", checked_inn)


@hookimpl
def hub_register_routes(hub: Any, register: Any) -> None:
    for route in api.routes(hub):
        register(route)


@hookimpl
def hub_register_listeners(hub: Any, register: Any) -> None:
    folder = watch.watcher(hub)
    if folder is not None:
        register(Poller("excel:watch", folder.poll, interval=hub.plugin_settings("excel").poll_interval))


@hookimpl
def hub_register_commands(register: Any) -> None:
    register(cli.excel)


@hookimpl
def hub_health(hub: Any) -> dict[str, Any]:
    folder = watch.watcher(hub)
    return folder.health() if folder is not None else {"status": "ok", "watch_dir": "not set"}


@hookimpl
def hub_shutdown(hub: Any) -> None:
    watch.forget(hub)
