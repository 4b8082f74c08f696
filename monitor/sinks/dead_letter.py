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

from monitor.sinks.kafka import TopicSender

log = logging.getLogger(__name__)


DEAD_LETTER_MAX_VALUE = 1_000_000


class DeadLetterSink(TopicSender):
    def __init__(self, producer, topic: str, *, max_value_bytes: int = DEAD_LETTER_MAX_VALUE) -> None:
        super().__init__(producer, topic, what="dead-letter topic")
        self.max_value_bytes = max_value_bytes
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
        self.send_record((key, value, h))
        self.count += 1


def dead_letter_fields(headers) -> dict[str, str]:
    """The provenance headers of a dead letter as text (for readers and tests)."""
    names = {"error", "error_detail", "source_topic", "source_partition", "source_offset",
             "value_omitted_bytes"}
    return {k: v.decode("utf-8", "replace") for k, v in (headers or ()) if k in names}
