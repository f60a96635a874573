"""The email plugin's hooks: mailboxes read over IMAP (a listener each), sending over SMTP (``POST /api/emails``,
``hub email send``), and each mailbox's health. Each hook delegates to the module that does the work."""

from __future__ import annotations

from typing import Any

from hub import hookimpl
from hub.core.sources import Listener

from . import api
from .cli import email
from .connection import accounts, forget
from .listener import MailboxListener
from .settings import EmailSection

__version__ = "1.0.0"


@hookimpl
def hub_register_settings(register: Any) -> None:
    register("email", EmailSection)


@hookimpl
def hub_register_routes(hub: Any, register: Any) -> None:
    found = accounts(hub)
    if len(found):  # without an SMTP server the route answers 409 and says which setting is missing
        for route in api.routes(found):
            register(route)


@hookimpl
def hub_register_listeners(hub: Any, register: Any) -> None:
    for account in accounts(hub):
        register(Listener(f"email:{account.key}", MailboxListener(account).run))


@hookimpl
def hub_register_commands(register: Any) -> None:
    register(email)


@hookimpl
def hub_health(hub: Any) -> dict[str, Any] | None:
    return accounts(hub).health()


@hookimpl
def hub_shutdown(hub: Any) -> None:
    forget(hub)
