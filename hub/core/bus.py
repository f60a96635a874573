"""The event bus on kombu: one direct exchange, and per sink one queue per partition of client ids.

A client always maps to the same partition, so its events stay in order; RabbitMQ queues use
single-active-consumer, so many worker processes share the partitions and never reorder one.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from kombu import Connection, Exchange, Queue


@dataclass(frozen=True)
class BusConfig:
    url: str
    partitions: int
    namespace: str = "hub"

    @property
    def exchange(self) -> Exchange:
        return Exchange(f"{self.namespace}.events", type="direct", durable=True)

    @property
    def durable(self) -> bool:
        """Whether messages survive the process: anything but the in-process memory transport."""
        return not self.url.startswith("memory://")

    @property
    def is_amqp(self) -> bool:
        return self.url.startswith(("amqp://", "amqps://", "pyamqp://"))

    def connection(self) -> Connection:
        options: dict[str, Any] = {}
        if self.url.startswith("memory://"):
            options["polling_interval"] = 0.005
        return Connection(self.url, transport_options=options, heartbeat=30 if self.is_amqp else 0)

    def partition(self, client_id: int) -> int:
        return client_id % self.partitions

    def routing_key(self, client_id: int) -> str:
        return f"p{self.partition(client_id)}"

    def queue_name(self, sink: str, partition: int) -> str:
        return f"{self.namespace}.sink.{sink}.p{partition}"

    def sink_queues(self, sink: str) -> list[Queue]:
        arguments = {"x-single-active-consumer": True} if self.is_amqp else None
        return [
            Queue(
                self.queue_name(sink, p),
                exchange=self.exchange,
                routing_key=f"p{p}",
                durable=True,
                queue_arguments=arguments,
            )
            for p in range(self.partitions)
        ]

    def declare(self, conn: Connection, sinks: list[str]) -> None:
        channel = conn.default_channel
        self.exchange(channel).declare()
        for sink in sinks:
            for queue in self.sink_queues(sink):
                queue(channel).declare()
