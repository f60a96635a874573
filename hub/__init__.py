"""crm-hub: one client record and one timeline across every tool a company talks to its customers with.

The public plugin API. Plugins import from here only (``from hub import hookimpl, Hub, Account, BadInput…``),
never ``hub.cli``, ``hub.web`` or ``hub.daemon`` (import-linter enforces it). Names are loaded on first use, so
``import hub`` stays cheap.
"""

from __future__ import annotations

import functools
import importlib
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

import pluggy

__version__ = "0.1.0"

hookimpl = pluggy.HookimplMarker("hub")

# public name → the module that defines it
_EXPORTS: dict[str, str] = {
    # errors
    "HubError": "hub.core.errors",
    "ConfigError": "hub.core.errors",
    "BadInput": "hub.core.errors",
    "NotFound": "hub.core.errors",
    "ExternalAPIError": "hub.core.errors",
    "FatalDelivery": "hub.core.errors",
    # events
    "SourceRef": "hub.core.events",
    "ClientKey": "hub.core.events",
    "ClientObservation": "hub.core.events",
    "InteractionObservation": "hub.core.events",
    "DealObservation": "hub.core.events",
    "TaskObservation": "hub.core.events",
    "RefObservation": "hub.core.events",
    "Observation": "hub.core.events",
    "Event": "hub.core.events",
    "ClientView": "hub.core.events",
    "ItemView": "hub.core.events",
    # identity
    "normalize_phone": "hub.core.identity",
    "normalize_email": "hub.core.identity",
    "split_phones": "hub.core.identity",
    # sinks and sources
    "Sink": "hub.core.sinks",
    "WebhookRoute": "hub.core.sources",
    "SenderCheck": "hub.core.sources",
    "Applied": "hub.core.ingest",
    "Listener": "hub.core.sources",
    "Poller": "hub.core.sources",
    # the connector layer
    "Account": "hub.core.accounts",
    "Accounts": "hub.core.accounts",
    "Reconciler": "hub.core.reconciler",
    "Page": "hub.core.reconciler",
    "Summary": "hub.core.reconciler",
    "RateSpec": "hub.core.ratelimit",
    "FormLimits": "hub.core.formcodec",
    "formcodec": "hub.core.formcodec",
    # the hub as plugins see it
    "Hub": "hub.core.hubapi",
    "StateStore": "hub.core.hubapi",
    "RegisterSettings": "hub.core.hubapi",
    "RegisterSink": "hub.core.hubapi",
    "RegisterRoute": "hub.core.hubapi",
    "RegisterListener": "hub.core.hubapi",
    "RegisterInboxHandler": "hub.core.hubapi",
    "RegisterCommand": "hub.core.hubapi",
    "RegisterSandbox": "hub.core.hubapi",
    "ProgressReporter": "hub.progress",
    "testing": "hub.testing",
}

if TYPE_CHECKING:
    from hub import testing
    from hub.core import formcodec
    from hub.core.accounts import Account, Accounts
    from hub.core.errors import BadInput, ConfigError, ExternalAPIError, FatalDelivery, HubError, NotFound
    from hub.core.events import (
        ClientKey,
        ClientObservation,
        ClientView,
        DealObservation,
        Event,
        InteractionObservation,
        ItemView,
        Observation,
        RefObservation,
        SourceRef,
        TaskObservation,
    )
    from hub.core.formcodec import FormLimits
    from hub.core.hub import Hub as CoreHub
    from hub.core.hubapi import (
        Hub,
        RegisterCommand,
        RegisterInboxHandler,
        RegisterListener,
        RegisterRoute,
        RegisterSandbox,
        RegisterSettings,
        RegisterSink,
        StateStore,
    )
    from hub.core.identity import normalize_email, normalize_phone, split_phones
    from hub.core.ingest import Applied
    from hub.core.ratelimit import RateSpec
    from hub.core.reconciler import Page, Reconciler, Summary
    from hub.core.sinks import Sink
    from hub.core.sources import Listener, Poller, SenderCheck, WebhookRoute
    from hub.progress import ProgressReporter


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'hub' has no attribute {name!r}")
    loaded = importlib.import_module(module)
    value = loaded if module.endswith(f".{name}") and not hasattr(loaded, name) else getattr(loaded, name)
    globals()[name] = value
    return value


Command = TypeVar("Command", bound=Callable[..., Any])


def get_hub(ctx: Any = None) -> CoreHub:
    """The hub of the running CLI command (``ctx``: its click context, the current one by default)."""
    import click

    from hub.cli import get_hub as from_cli  # the CLI is the one that knows how the hub was configured

    return from_cli(ctx if ctx is not None else click.get_current_context())


def pass_hub(command: Command) -> Command:
    """Give a plugin's click command the hub as its first argument (settings loaded, schema migrated).

    ``@bitrix24.command("backfill") @pass_hub def backfill(hub: Hub, …)``: the plugin never imports ``hub.cli``.
    """

    @functools.wraps(command)
    def with_hub(*args: Any, **kwargs: Any) -> Any:
        return command(get_hub(), *args, **kwargs)

    return with_hub  # type: ignore[return-value]


__all__ = [
    "Account",
    "Accounts",
    "Applied",
    "BadInput",
    "ClientKey",
    "ClientObservation",
    "ClientView",
    "ConfigError",
    "DealObservation",
    "Event",
    "ExternalAPIError",
    "FatalDelivery",
    "FormLimits",
    "Hub",
    "HubError",
    "InteractionObservation",
    "ItemView",
    "Listener",
    "NotFound",
    "Observation",
    "Page",
    "Poller",
    "ProgressReporter",
    "RateSpec",
    "Reconciler",
    "RefObservation",
    "RegisterCommand",
    "RegisterInboxHandler",
    "RegisterListener",
    "RegisterRoute",
    "RegisterSandbox",
    "RegisterSettings",
    "RegisterSink",
    "SenderCheck",
    "Sink",
    "SourceRef",
    "StateStore",
    "Summary",
    "TaskObservation",
    "WebhookRoute",
    "__version__",
    "formcodec",
    "get_hub",
    "hookimpl",
    "normalize_email",
    "normalize_phone",
    "pass_hub",
    "split_phones",
    "testing",
]
