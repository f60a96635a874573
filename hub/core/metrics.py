"""Prometheus metrics of the hub: one registry, named once here, served at /metrics."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


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
        self.outbox_pending = Gauge("hub_outbox_pending", "Outbox rows not yet relayed", registry=r)
        self.api_calls = Counter("hub_api_calls_total", "Requests made to external APIs", ["account"], registry=r)
        self.limit_wait = Counter(
            "hub_rate_limit_wait_seconds_total", "Seconds spent waiting for rate limits", ["account"], registry=r
        )
        self.inbox = Counter("hub_inbox_total", "Inbox items handled", ["kind", "outcome"], registry=r)


METRICS = Metrics()
