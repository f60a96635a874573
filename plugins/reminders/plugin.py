"""The reminder rules' hooks: their settings (``HUB_REMINDERS__*``) and the poller that evaluates them."""

from __future__ import annotations

from typing import Any

import structlog

from hub import hookimpl
from hub.core.reminders import ReminderSettings, evaluate
from hub.core.sources import Poller

__version__ = "1.0.0"
log = structlog.get_logger("hub.reminders")


@hookimpl
def hub_register_settings(register: Any) -> None:
    register("reminders", ReminderSettings)


@hookimpl
def hub_register_listeners(hub: Any, register: Any) -> None:
    settings: ReminderSettings = hub.plugin_settings("reminders")

    def poll() -> None:
        outcome = evaluate(hub, settings)
        if outcome.created or outcome.closed:
            log.info("reminders applied", created=outcome.created, closed=outcome.closed)

    register(Poller("reminders", poll, interval=settings.interval_s))
