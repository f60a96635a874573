"""What a plugin registers to bring data in: webhook routes, listeners and pollers."""

from __future__ import annotations

import threading
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class SenderCheck:
    """How a webhook route knows who sent a request: ``what`` (a signature, a token, a secret path), whether it
    is ``configured``, and, when it is not, ``missing``: what to set. A route without it is never mounted."""

    what: str
    configured: bool
    missing: str = ""


@dataclass(frozen=True)
class WebhookRoute:
    """An HTTP route served by the web role. ``handler(request) -> response`` (Starlette types).

    Routes under ``/api/`` are guarded by the API token. Every other route is a webhook and must say how it
    verifies its sender (``sender``): without a configured check it is not mounted at all (404), and
    ``hub plugins list`` says what is missing.
    """

    path: str
    handler: Callable[[Any], Awaitable[Any]]
    methods: Sequence[str] = ("POST",)
    name: str | None = None
    sender: SenderCheck | None = None
    openapi: dict[str, Any] | None = None
    """Merged into the route's OpenAPI operation: its ``parameters``, ``requestBody`` and ``responses``."""

    @property
    def is_api(self) -> bool:
        return self.path == "/api" or self.path.startswith("/api/")

    def unmounted_because(self) -> str | None:
        """Why this route must not be served, or ``None`` when it may."""
        if self.is_api:
            return None
        if self.sender is None:
            return "it declares no sender verification (a webhook must check a signature, token or secret)"
        if not self.sender.configured:
            return f"{self.sender.what} is not configured: {self.sender.missing or 'see the plugin docs'}"
        return None


@dataclass(frozen=True)
class UnmountedRoute:
    """A route a plugin offered that the hub does not serve, and why."""

    plugin: str
    path: str
    reason: str


@dataclass
class Listener:
    """A long-running source. ``run(stop)`` must return soon after ``stop`` is set.

    If ``run`` raises, it is logged and started again after a backoff (1 s doubling to 60 s).
    """

    name: str
    run: Callable[[threading.Event], None]


@dataclass
class Poller:
    """A periodic source (reconciliation): ``poll()`` every ``interval`` seconds, never concurrently."""

    name: str
    poll: Callable[[], None]
    interval: float = 60.0
    run_at_start: bool = True
    meta: dict[str, Any] = field(default_factory=dict)
