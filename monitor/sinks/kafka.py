"""Events to a Kafka topic: JSON values keyed by stream id, idempotent producer, acks=all.

``flush`` blocks until the broker has acknowledged every queued event and raises if any send
failed, so the service commits offsets only after its events are durable.
"""
from __future__ import annotations

import json
from typing import Any

from monitor.errors import MonitorError
from monitor.sinks.base import Sink


class SinkError(MonitorError):
    """A sink could not make its events durable."""


def make_producer(bootstrap: str, *, client_options: dict | None = None, **kw: Any):
    from kafka import KafkaProducer  # noqa: PLC0415

    opts = dict(bootstrap_servers=bootstrap, acks="all", enable_idempotence=True, linger_ms=5,
                retries=2**31 - 1, request_timeout_ms=30000)
    opts.update(client_options or {})
    opts.update(kw)
    return KafkaProducer(**opts)


class KafkaSink(Sink):
    def __init__(self, producer, topic: str, *, own_producer: bool = False) -> None:
        self.producer, self.topic, self.own = producer, topic, own_producer
        self._futures: list = []

    def write(self, event: dict[str, Any]) -> None:
        value = json.dumps(event, separators=(",", ":")).encode()
        self._futures.append(self.producer.send(self.topic, key=str(event["stream"]).encode(), value=value))

    def flush(self) -> None:
        self.producer.flush()
        futures, self._futures = self._futures, []
        for f in futures:
            if f.failed():
                raise SinkError(f"events topic {self.topic}: a send failed ({f.exception})")

    def close(self) -> None:
        self.flush()
        if self.own:
            self.producer.close()
