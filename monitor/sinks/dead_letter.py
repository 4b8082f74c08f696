"""The dead-letter topic: every message the service cannot use, with why and where from.

The original key, value and headers are kept byte for byte; headers ``error`` (a short code),
``error_detail``, ``source_topic``, ``source_partition`` and ``source_offset`` are appended.
Flushed (acknowledged by the broker) before offsets are committed, so nothing is lost.
"""
from __future__ import annotations

import logging

from monitor.sinks.kafka import SinkError

log = logging.getLogger(__name__)


class DeadLetterSink:
    def __init__(self, producer, topic: str) -> None:
        self.producer, self.topic = producer, topic
        self._futures: list = []
        self.count = 0

    def send(self, *, key: bytes | None, value: bytes | None, headers, error: str, detail: str,
             topic: str, partition: int, offset: int) -> None:
        h = list(headers or ()) + [
            ("error", error.encode()), ("error_detail", detail.encode("utf-8", "replace")[:500]),
            ("source_topic", topic.encode()), ("source_partition", str(partition).encode()),
            ("source_offset", str(offset).encode())]
        self._futures.append(self.producer.send(self.topic, key=key, value=value, headers=h))
        self.count += 1

    def flush(self) -> None:
        self.producer.flush()
        futures, self._futures = self._futures, []
        for f in futures:
            if f.failed():
                raise SinkError(f"dead-letter topic {self.topic}: a send failed ({f.exception})")


def dead_letter_fields(headers) -> dict[str, str]:
    """The provenance headers of a dead letter as text (for readers and tests)."""
    names = {"error", "error_detail", "source_topic", "source_partition", "source_offset"}
    return {k: v.decode("utf-8", "replace") for k, v in (headers or ()) if k in names}
