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


class TopicSender:
    """Records to one topic through a producer that can be swapped. Sends that fail are kept,
    so that after the caller rebuilt the producer (a broker restart leaves kafka-python's
    idempotent producer failing ``InitProducerId``) ``resend`` publishes them again:
    at-least-once, same keys, values and headers. ``what`` names the topic's role in errors."""

    def __init__(self, producer, topic: str, *, what: str) -> None:
        self.producer, self.topic, self.what = producer, topic, what
        self._sent: list = []  # (future, (key, value, headers)), not yet flushed
        self._failed: list[tuple] = []

    def send_record(self, record: tuple) -> None:
        """Send ``(key, value, headers)``; a refused send is kept for ``resend``."""
        from kafka.errors import KafkaError  # noqa: PLC0415

        key, value, headers = record
        try:
            self._sent.append((self.producer.send(self.topic, key=key, value=value, headers=headers), record))
        except KafkaError:  # the producer is in a fatal state: kept for ``resend``
            self._failed.append(record)

    def flush(self) -> None:
        """Block until the broker acknowledged every send; raise if any failed."""
        self.producer.flush()
        sent, self._sent = self._sent, []
        errors = [f.exception for f, _ in sent if f.failed()]
        self._failed += [r for f, r in sent if f.failed()]
        if self._failed:
            raise SinkError(f"{self.what} {self.topic}: {len(self._failed)} send(s) failed "
                            f"({errors[0] if errors else 'the producer refused them'})")

    def resend(self, producer) -> int:
        """Use ``producer`` from now on and send again what failed; returns how many."""
        self.producer = producer
        failed, self._failed = self._failed, []
        for r in failed:
            self.send_record(r)
        return len(failed)


class KafkaSink(TopicSender, Sink):
    """Events to ``topic``, keyed by stream id."""

    def __init__(self, producer, topic: str, *, own_producer: bool = False) -> None:
        super().__init__(producer, topic, what="events topic")
        self.own = own_producer

    def write(self, event: dict[str, Any]) -> None:
        value = json.dumps(event, separators=(",", ":")).encode()
        self.send_record((str(event["stream"]).encode(), value, None))

    def close(self) -> None:
        self.flush()
        if self.own:
            self.producer.close()
