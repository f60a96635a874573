"""The sink contract: what a plugin implements to receive the hub's events.

A sink is configured by class attributes (``max_batch``, ``rate_limit``, retry settings) and implements
``deliver``. The core drives it: queues, batching, rate limit, retries, deliveries, dead letters.
"""

from __future__ import annotations

from collections.abc import Sequence

from hub.core.events import Event


class Sink:
    """Base class for sinks. One instance per connected external account.

    - ``name``: unique, stable (``"bitrix24:acme.bitrix24.ru"``); it names the queues and dead letters.
    - ``system`` / ``account``: events caused by this same system and account are never delivered here.
    - ``max_batch``: at most this many events per ``deliver`` call (events of one partition, in order).
    - ``rate_limit``: optional ``"2/s burst 50"``; the runner acquires one unit per ``deliver`` call. Plugins
      whose calls fan out into several requests use ``hub.limiter(name, spec)`` in their API client instead.
    - ``max_attempts``, ``backoff_base``, ``backoff_max``, ``timeout``: override the hub-wide ``HUB_SINK__*``
      defaults (a ``deliver`` call running longer than ``timeout`` seconds counts as a failed attempt).

    - ``spread``: with several worker processes on RabbitMQ, each consumes a share of this sink's partitions
      (the default). ``False`` keeps every partition with one process at a time (single-active-consumer), for
      a sink that must batch an account's whole traffic in one place.

    Set them on the class or, per connected account, on the instance.
    """

    name: str = ""
    system: str = ""
    account: str = ""
    max_batch: int = 1
    rate_limit: str | None = None
    max_attempts: int | None = None
    backoff_base: float | None = None
    backoff_max: float | None = None
    timeout: float | None = None
    spread: bool = True

    def accepts(self, event: Event) -> bool:
        """Whether this sink wants the event at all (filter by type, say). Skipped events are recorded."""
        return True

    def deliver(self, events: Sequence[Event]) -> None:
        """Apply ``events`` (in order, all of one partition) to the external system, idempotently.

        Return normally when every event took effect. Raise :class:`hub.core.errors.ExternalAPIError` (with
        ``retriable`` and ``retry_after``) or any exception to have the batch retried; raise
        :class:`hub.core.errors.FatalDelivery` for an event that can never succeed. After the last attempt a
        batch is retried event by event so that only the failing events are dead-lettered.
        Delivery is at-least-once: use the refs in ``event.client.refs`` first, then search the target by
        phone/email before any create, and report new ids with ``hub.ingest(RefObservation(...))``.
        """
        raise NotImplementedError

    def origin_matches(self, event: Event) -> bool:
        """Whether the event came from this sink's own system and account (an echo)."""
        if event.origin.system != self.system:
            return False
        return not self.account or not event.origin.account or event.origin.account == self.account
