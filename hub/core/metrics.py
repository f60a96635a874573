"""Prometheus metrics of the hub: one registry, named once here, served at /metrics.

Every process serves its own figures: the web role at ``/metrics`` of its HTTP port, the worker and listener
roles on their metrics port (``HUB_METRICS__PORT``). A role shows only the metrics it produces, so the web
role never shows ``hub_events_relayed_total 0`` while workers elsewhere relay; figures that hold for the whole
hub (outbox backlog, queue depth per sink and partition, open dead letters) are read at scrape time.
"""

from __future__ import annotations

from collections.abc import Iterable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.metrics_core import Metric

# Families only the worker role produces (relay, sink workers, inbox worker): hidden where they would only
# ever read 0.
WORKER_ONLY = frozenset(
    {
        "hub_events_relayed",
        "hub_deliveries",
        "hub_retries",
        "hub_dead_letters",
        "hub_delivery_seconds",
        "hub_sink_lag_seconds",
        "hub_sink_partition_lag_seconds",
        "hub_inbox",
        "hub_relay_last_round_age_seconds",
    }
)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.observations = Counter("hub_observations_total", "Observations received", ["kind", "outcome"], registry=r)
        self.events_emitted = Counter("hub_events_emitted_total", "Events written to the outbox", ["type"], registry=r)
        self.events_relayed = Counter("hub_events_relayed_total", "Outbox events published to the bus", registry=r)
        self.deliveries = Counter("hub_deliveries_total", "Events handled by sinks", ["sink", "outcome"], registry=r)
        self.retries = Counter("hub_retries_total", "Failed attempts that will be retried", ["queue"], registry=r)
        self.dead_letters = Counter(
            "hub_dead_letters_total", "Items moved to the dead-letter store", ["queue"], registry=r
        )
        self.delivery_seconds = Histogram(
            "hub_delivery_seconds", "Time of one sink delivery call", ["sink"], registry=r
        )
        self.sink_lag = Gauge(
            "hub_sink_lag_seconds", "Age of the last event a sink handled when it handled it", ["sink"], registry=r
        )
        self.partition_lag = Gauge(
            "hub_sink_partition_lag_seconds",
            "Age of the last event a sink handled when it handled it, per partition queue",
            ["sink", "partition"],
            registry=r,
        )
        self.queue_depth = Gauge(
            "hub_sink_queue_depth",
            "Events waiting in a sink's partition queue (read from the bus at scrape time)",
            ["sink", "partition"],
            registry=r,
        )
        self.outbox_pending = Gauge("hub_outbox_pending", "Outbox rows not yet relayed", registry=r)
        self.outbox_oldest = Gauge(
            "hub_outbox_oldest_pending_seconds", "Age of the oldest outbox row not yet relayed", registry=r
        )
        self.dead_letters_open = Gauge(
            "hub_dead_letters_open", "Dead letters waiting for a replay or a discard", ["queue"], registry=r
        )
        self.relay_round_age = Gauge(
            "hub_relay_last_round_age_seconds", "Seconds since this process's relay last went round", registry=r
        )
        self.api_calls = Counter("hub_api_calls_total", "Requests made to external APIs", ["account"], registry=r)
        self.limit_wait = Counter(
            "hub_rate_limit_wait_seconds_total", "Seconds spent waiting for rate limits", ["account"], registry=r
        )
        self.inbox = Counter("hub_inbox_total", "Inbox items handled", ["kind", "outcome"], registry=r)

    def for_role(self, role: str | None) -> RoleView:
        """What ``role`` serves: everything for ``all`` and ``worker``, the rest without worker-only families."""
        return RoleView(self.registry, () if role in (None, "all", "worker") else WORKER_ONLY)


class RoleView:
    """A collector over the registry that leaves some families out (``generate_latest`` takes any collector)."""

    def __init__(self, registry: CollectorRegistry, hidden: Iterable[str]) -> None:
        self.registry = registry
        self.hidden = frozenset(hidden)

    def collect(self) -> Iterable[Metric]:
        for metric in self.registry.collect():
            if metric.name not in self.hidden:
                yield metric


METRICS = Metrics()
