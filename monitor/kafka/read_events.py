"""Read the events topic back: every partition from the start, without joining a group.

Reading must not disturb the service: no consumer group, no commits, so any number of operators
can read at once. Tansu may report a partition's end offset short of the true end (DESIGN §5),
so "the end" is where the reported end offsets are passed and a poll comes back empty.
"""
from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from typing import Any

from monitor.errors import MonitorError

log = logging.getLogger(__name__)


def read_events(k: Any, *, topic: str, follow: bool = False, idle_ms: int = 1000,
                since_ms: int | None = None, stopping=None) -> Iterator[tuple[int, dict | None, bytes]]:
    """(publish time in ms, event or None when not JSON, raw value) in partition order."""
    from kafka import KafkaConsumer, TopicPartition  # noqa: PLC0415

    from monitor.kafka.connect import probe  # noqa: PLC0415
    from monitor.kafka.security import kafka_python_options  # noqa: PLC0415

    probe(k)
    c = KafkaConsumer(bootstrap_servers=k.bootstrap.split(","), client_id=f"{k.client_id}-events-reader",
                      enable_auto_commit=False, group_id=None, **kafka_python_options(k))
    try:
        parts = c.partitions_for_topic(topic)
        if not parts:
            raise MonitorError(f"topic {topic} not found on {k.bootstrap} (kafka.events_topic)")
        tps = [TopicPartition(topic, p) for p in sorted(parts)]
        c.assign(tps)
        c.seek_to_beginning(*tps)
        if since_ms is not None:
            _seek_to_time(c, tps, since_ms)
        end = c.end_offsets(tps)
        while stopping is None or not stopping.is_set():
            batch = c.poll(timeout_ms=idle_ms)
            for tp in tps:
                for m in batch.get(tp, ()):
                    try:
                        event = json.loads(m.value)
                    except (TypeError, ValueError):
                        event = None
                    yield m.timestamp, event, m.value
            if not batch and not follow and all(c.position(tp) >= end[tp] for tp in tps):
                return
    finally:
        c.close()


def _seek_to_time(c, tps, since_ms: int) -> None:
    """Start at the first message published at or after ``since_ms`` where the broker can say;
    the caller filters by timestamp anyway, so a broker without time lookups only costs reading."""
    try:
        found = c.offsets_for_times({tp: since_ms for tp in tps})
    except Exception as exc:  # noqa: BLE001 - an optimisation; reading from the start is correct
        log.debug("offsets_for_times not available (%s); reading from the start", exc)
        return
    for tp, hit in found.items():
        if hit is not None:
            c.seek(tp, hit.offset)
