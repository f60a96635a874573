"""The hub as plugins see it: a :class:`Hub` protocol (what a plugin may call) and typed ``register`` callbacks.

:class:`hub.core.hub.Hub` satisfies it; plugins type their ``hub`` argument with it (``from hub import Hub``)
instead of ``Any``, so mypy checks the seam between the core and every plugin.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol

from hub.core.events import ClientView, ItemView, Observation, SourceRef
from hub.core.ratelimit import Limiter

if TYPE_CHECKING:
    from hub.core.ingest import Applied
    from hub.core.sinks import Sink
    from hub.core.sources import Listener, Poller, WebhookRoute


class StateStore(Protocol):
    """Durable key-value state (``hub.state``): cursors, tokens, claims. Writes commit before they return."""

    def get(self, scope: str, key: str, default: Any = None) -> Any: ...

    def put(self, scope: str, key: str, value: Any) -> None: ...

    def put_many(self, scope: str, values: dict[str, Any]) -> None: ...

    def claim(self, scope: str, key: str, value: Any) -> bool: ...

    def delete(self, scope: str, key: str) -> None: ...

    def items(self, scope: str) -> dict[str, Any]: ...


class Inbox(Protocol):
    """The durable inbox (``hub.inbox``): a webhook stores its hint here before it answers 2xx."""

    def put(self, kind: str, payload: dict[str, Any], *, dedup_key: str | None = None, delay: float = 0.0) -> bool: ...


class Hub(Protocol):
    """What a plugin may use of the hub it is loaded into."""

    state: StateStore
    inbox: Inbox
    stop_event: threading.Event

    def plugin_settings(self, name: str) -> Any: ...

    def runtime(self, key: str, factory: Callable[[], Any]) -> Any: ...

    def release_runtime(self, key: str) -> None: ...

    def limiter(self, name: str, spec: str) -> Limiter: ...

    def ingest(self, obs: Any, *, strict: bool = True) -> Applied: ...

    def ingest_many(self, observations: Sequence[Any], *, strict: bool = True) -> list[Any]: ...

    def find_clients(
        self,
        *,
        phone: str | None = None,
        email: str | None = None,
        q: str | None = None,
        ref: SourceRef | None = None,
        limit: int = 50,
    ) -> list[ClientView]: ...

    def get_client(self, client_id: int) -> ClientView: ...

    def timeline(self, client_id: int, *, limit: int = 100, kinds: list[str] | None = None) -> list[ItemView]: ...

    def find_item(self, ref: SourceRef) -> ItemView | None: ...

    def get_item(self, item_id: int) -> ItemView: ...

    def iter_clients(
        self, *, since: datetime | None = None, system: str | None = None, page: int = 1000
    ) -> Iterator[ClientView]: ...


# The register callbacks the hooks receive, by what they take.
RegisterSettings = Callable[[str, Any], None]  # (plugin name, pydantic settings model)
RegisterSink = Callable[["Sink"], None]
RegisterRoute = Callable[["WebhookRoute"], None]
RegisterListener = Callable[["Listener | Poller"], None]
RegisterInboxHandler = Callable[[str, Callable[[dict[str, Any]], Any]], None]
RegisterCommand = Callable[[Any], None]  # a click command or group
RegisterSandbox = Callable[[str, Callable[..., Any]], None]  # (name, ASGI app factory)

__all__ = [
    "Hub",
    "Inbox",
    "Observation",
    "RegisterCommand",
    "RegisterInboxHandler",
    "RegisterListener",
    "RegisterRoute",
    "RegisterSandbox",
    "RegisterSettings",
    "RegisterSink",
    "StateStore",
]
