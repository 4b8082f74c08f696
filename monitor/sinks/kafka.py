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
    """Events to ``topic``. Sends that fail are kept, so that after the caller rebuilt the
    producer (a broker restart leaves kafka-python's idempotent producer failing
    ``InitProducerId``) ``resend`` publishes them again: at-least-once, same keys and values."""

    def __init__(self, producer, topic: str, *, own_producer: bool = False) -> None:
        self.producer, self.topic, self.own = producer, topic, own_producer
        self._sent: list = []  # (future, key, value), not yet flushed
        self._failed: list[tuple[bytes, bytes]] = []

    def write(self, event: dict[str, Any]) -> None:
        value = json.dumps(event, separators=(",", ":")).encode()
        self._send(str(event["stream"]).encode(), value)

    def _send(self, key: bytes, value: bytes) -> None:
        from kafka.errors import KafkaError  # noqa: PLC0415

        try:
            self._sent.append((self.producer.send(self.topic, key=key, value=value), key, value))
        except KafkaError:  # the producer is in a fatal state: kept for ``resend``
            self._failed.append((key, value))

    def flush(self) -> None:
        self.producer.flush()
        sent, self._sent = self._sent, []
        errors = [f.exception for f, _, _ in sent if f.failed()]
        self._failed += [(k, v) for f, k, v in sent if f.failed()]
        if self._failed:
            raise SinkError(f"events topic {self.topic}: {len(self._failed)} send(s) failed "
                            f"({errors[0] if errors else 'the producer refused them'})")

    def resend(self, producer) -> int:
        """Use ``producer`` from now on and send again what failed; returns how many."""
        self.producer = producer
        failed, self._failed = self._failed, []
        for k, v in failed:
            self._send(k, v)
        return len(failed)

    def close(self) -> None:
        self.flush()
        if self.own:
            self.producer.close()
