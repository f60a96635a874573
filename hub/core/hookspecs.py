"""Every hook a plugin can implement, in one module. Each docstring is the contract (see docs/plugins.md).

Registration hooks get a ``register`` callback: the core owns the collections, a plugin calls ``register(obj)``
once per thing it offers. No hook here is ``firstresult``: nothing in the core has a single owner to ask.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import pluggy

if TYPE_CHECKING:
    from hub.core.hub import Hub

hookspec = pluggy.HookspecMarker("hub")


@hookspec
def hub_register_settings(register: Callable[[str, type], None]) -> None:
    """Declare the plugin's settings model.

    Called once while settings load, before anything else starts. Call ``register(name, model)`` with the
    section name (``"bitrix24"``) and a ``pydantic.BaseModel`` subclass. Its values come from the environment
    as ``HUB_<NAME>__<FIELD>`` (nested fields with further ``__``), from ``.env`` and from the ``[name]`` table of
    the TOML file. Fields typed ``SecretStr`` are masked in ``hub config show`` and redacted from logs.
    Read the values back with ``hub.plugin_settings(name)``. Returns nothing.
    """


@hookspec
def hub_startup(hub: Hub) -> None:
    """The hub is starting: settings are loaded, the database is migrated, the bus is connected.

    Called once per process, in every role, before routes serve and workers consume. ``hub`` is the facade
    (:class:`hub.core.hub.Hub`). Open connections here; start nothing long-running in this hook itself (register
    a listener or poller instead). An exception is logged and the plugin is marked unhealthy; the others go on.
    """


@hookspec
def hub_shutdown(hub: Hub) -> None:
    """The hub is stopping (SIGTERM, Ctrl-C, end of a CLI command).

    Called once per process after listeners and workers have drained. Close connections and flush state.
    Exceptions are logged and ignored.
    """


@hookspec
def hub_register_sinks(hub: Hub, register: Callable[[Any], None]) -> None:
    """Offer sinks: destinations that receive the hub's events.

    Called once per process after ``hub_startup``. Call ``register(sink)`` with a :class:`hub.core.sinks.Sink`
    for each connected account (one Bitrix24 portal, one amoCRM account). The core gives each sink its own
    durable queues, batches events up to ``sink.max_batch``, retries with backoff, records deliveries (so a
    redelivered event is not delivered twice) and dead-letters what keeps failing. A sink never receives
    events that its own ``system``/``account`` caused. Sink names must be unique.
    """


@hookspec
def hub_register_routes(hub: Hub, register: Callable[[Any], None]) -> None:
    """Offer HTTP routes, typically webhooks under ``/webhooks/<plugin>/``.

    Called once when the web role builds its application. Call ``register(route)`` with a
    :class:`hub.core.sources.WebhookRoute`; its handler is an ``async`` function taking a Starlette ``Request``
    and returning a Starlette ``Response``. Answer 2xx only once what was received is durably stored
    (``hub.ingest`` or ``hub.inbox.put`` returned). An exception in a handler becomes a 500 and is logged.

    Routes under ``/api/`` sit behind the API token. Every other route is a webhook: give it
    ``sender=SenderCheck(what, configured, missing)``. Register it whether or not its verification is configured:
    the core mounts it only when ``configured`` is true (otherwise the path is a 404) and ``hub plugins list``
    shows ``missing``. The handler still checks the signature or token of every request.
    """


@hookspec
def hub_register_listeners(hub: Hub, register: Callable[[Any], None]) -> None:
    """Offer long-running sources: listeners (a socket, an IMAP IDLE) and pollers (a periodic reconciliation).

    Called once in the ``listener`` role (and ``all``). Call ``register(obj)`` with a
    :class:`hub.core.sources.Listener` (run in its own thread until the stop event is set, restarted with
    backoff if it raises) or a :class:`hub.core.sources.Poller` (its ``poll`` is called every ``interval``
    seconds, never concurrently with itself; exceptions are logged and it runs again at the next tick).
    """


@hookspec
def hub_register_inbox_handlers(hub: Hub, register: Callable[[str, Callable[[dict[str, Any]], None]], None]) -> None:
    """Offer handlers for durable inbox items (webhook hints that need more work, such as reading an entity).

    Called once per process. Call ``register(kind, handler)``; ``kind`` is namespaced by the plugin
    (``"bitrix24.event"``). A webhook stores its raw hint with ``hub.inbox.put(kind, payload)``, answers at
    once, and a worker calls ``handler(payload)`` later: retried with backoff if it raises, dead-lettered
    after the last attempt. Handlers must be idempotent.
    """


@hookspec
def hub_register_commands(register: Callable[[Any], None]) -> None:
    """Offer CLI commands: ``register(command)`` with a ``click.Command`` or ``click.Group``.

    Called once when ``hub`` builds its command line. The command appears as ``hub <name>``; it gets the
    hub with ``hub.cli.get_hub(ctx)``. Returns nothing.
    """


@hookspec
def hub_register_sandboxes(register: Callable[[str, Callable[..., Any]], None]) -> None:
    """Offer a local emulator of the plugin's external system: ``register(name, app_factory)``.

    ``app_factory(**options)`` returns an ASGI application; ``hub sandbox <name> --port N`` serves it and prints
    ``app.state.banner`` when the app sets one (how to reach it: a token it made up, a webhook code).
    """


@hookspec
def hub_register_identity_keys(register: Callable[[str, Callable[[str], str | None]], None]) -> None:
    """Offer extra identity keys for clients, such as a company's INN.

    Call ``register(key, normalise)``: ``normalise(raw)`` returns the canonical value or ``None`` when the
    raw value is not valid. Observations carry them in ``identity``; two clients with the same key are found
    as one, after external refs and before phones and emails.
    """


@hookspec
def hub_health(hub: Hub) -> dict[str, Any] | None:
    """Report the plugin's health, shown by ``hub plugins list`` and ``/readyz``.

    Called on demand. Return ``{"status": "ok"|"degraded"|"down", ...details}`` or ``None`` when the
    plugin has nothing to say. Never put secrets in the details.
    """
