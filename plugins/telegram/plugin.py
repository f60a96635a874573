"""The Telegram plugin's hooks: a bot's private chats in (long polling or webhook), replies out."""

from __future__ import annotations

from typing import Any

from hub import hookimpl
from hub.core.sources import Listener

from . import cli
from .bot import UPDATE_KIND, Bot
from .sandbox import create_app
from .settings import TelegramSettings
from .webhooks import api_route, webhook_route

RUNTIME = "telegram"


def bot(hub: Any) -> Bot | None:
    """The hub's bot, or ``None`` when no bot token is set."""
    settings: TelegramSettings = hub.plugin_settings("telegram")
    if not settings.configured:
        return None
    found: Bot = hub.runtime(RUNTIME, lambda: Bot(hub, settings))
    return found


@hookimpl
def hub_register_settings(register: Any) -> None:
    register("telegram", TelegramSettings)


@hookimpl
def hub_register_routes(hub: Any, register: Any) -> None:
    found = bot(hub)
    if found is None:
        return
    register(api_route(found))
    if found.settings.mode == "webhook":  # mounted only once its secret is set (the core checks)
        register(webhook_route(found))


@hookimpl
def hub_register_inbox_handlers(hub: Any, register: Any) -> None:
    found = bot(hub)
    if found is not None:
        register(UPDATE_KIND, found.handle_update)


@hookimpl
def hub_register_listeners(hub: Any, register: Any) -> None:
    found = bot(hub)
    if found is not None and found.settings.mode == "polling":
        register(Listener("telegram:updates", found.run_polling))


@hookimpl
def hub_register_commands(register: Any) -> None:
    register(cli.telegram)


@hookimpl
def hub_register_sandboxes(register: Any) -> None:
    register("telegram", create_app)


@hookimpl
def hub_health(hub: Any) -> dict[str, Any] | None:
    found = bot(hub)
    if found is None:
        return None
    report = found.health()
    if found.settings.mode == "webhook" and found.settings.webhook_secret is None:
        report = {**report, "status": "down", "error": "webhook mode needs HUB_TELEGRAM__WEBHOOK_SECRET"}
    return report


@hookimpl
def hub_shutdown(hub: Any) -> None:
    hub.release_runtime(RUNTIME)
