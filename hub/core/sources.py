"""What a plugin registers to bring data in: webhook routes, listeners and pollers."""

from __future__ import annotations

import threading
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class WebhookRoute:
    """An HTTP route served by the web role. ``handler(request) -> response`` (Starlette types)."""

    path: str
    handler: Callable[[Any], Awaitable[Any]]
    methods: Sequence[str] = ("POST",)
    name: str | None = None
    openapi: dict[str, Any] | None = None
    """Merged into the route's OpenAPI operation: its ``parameters``, ``requestBody`` and ``responses``."""


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
