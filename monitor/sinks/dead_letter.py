"""The dead-letter topic: every message the service cannot use, with why and where from.

The original key, value and headers are kept byte for byte; headers ``error`` (a short code),
``error_detail``, ``source_topic``, ``source_partition`` and ``source_offset`` are appended.
Flushed (acknowledged by the broker) before offsets are committed, so nothing is lost.

A value over ``max_value_bytes`` (default 1,000,000: under Kafka's default ``message.max.bytes``
and kafka-python's default ``max_request_size``) is left out, with a header
``value_omitted_bytes`` saying how long it was; the provenance headers still point at the
original in the source topic. Sending it whole would fail the producer (a 5 MiB chunk did:
``MessageSizeTooLargeError`` stopped the worker), and the one message the dead-letter topic
exists for would take the worker down with it.
"""
from __future__ import annotations

import logging

from monitor.sinks.kafka import SinkError

log = logging.getLogger(__name__)


DEAD_LETTER_MAX_VALUE = 1_000_000


class DeadLetterSink:
    def __init__(self, producer, topic: str, *, max_value_bytes: int = DEAD_LETTER_MAX_VALUE) -> None:
        self.producer, self.topic, self.max_value_bytes = producer, topic, max_value_bytes
        self._sent: list = []  # (future, (key, value, headers)), not yet flushed
        self._failed: list[tuple] = []  # kept for ``resend`` after the producer was rebuilt
        self.count = 0

    def send(self, *, key: bytes | None, value: bytes | None, headers, error: str, detail: str,
             topic: str, partition: int, offset: int) -> None:
        h = list(headers or ()) + [
            ("error", error.encode()), ("error_detail", detail.encode("utf-8", "replace")[:500]),
            ("source_topic", topic.encode()), ("source_partition", str(partition).encode()),
            ("source_offset", str(offset).encode())]
        if value is not None and len(value) > self.max_value_bytes:
            h.append(("value_omitted_bytes", str(len(value)).encode()))
            value = None
        self._send((key, value, h))
        self.count += 1

    def _send(self, record: tuple) -> None:
        from kafka.errors import KafkaError  # noqa: PLC0415

        key, value, h = record
        try:
            self._sent.append((self.producer.send(self.topic, key=key, value=value, headers=h), record))
        except KafkaError:
            self._failed.append(record)

    def flush(self) -> None:
        self.producer.flush()
        sent, self._sent = self._sent, []
        errors = [f.exception for f, _ in sent if f.failed()]
        self._failed += [r for f, r in sent if f.failed()]
        if self._failed:
            raise SinkError(f"dead-letter topic {self.topic}: {len(self._failed)} send(s) failed "
                            f"({errors[0] if errors else 'the producer refused them'})")

    def resend(self, producer) -> int:
        """Use ``producer`` from now on and send again what failed; returns how many."""
        self.producer = producer
        failed, self._failed = self._failed, []
        for r in failed:
            self._send(r)
        return len(failed)


def dead_letter_fields(headers) -> dict[str, str]:
    """The provenance headers of a dead letter as text (for readers and tests)."""
    names = {"error", "error_detail", "source_topic", "source_partition", "source_offset",
             "value_omitted_bytes"}
    return {k: v.decode("utf-8", "replace") for k, v in (headers or ()) if k in names}
