"""Plausibility bounds every consumed message is held to before its content is used.

A message can be well-formed and still lie: a producer bug or a corrupted clock sends minutes
of audio in one chunk, or stamps a chunk a year ahead. Scored as-is, such a message raises
machine events on nonsense (one 5 MiB chunk was 164 s of audio) or moves a stream's sample
grid far away (a ``gap`` both ways). So each one goes to the dead-letter topic with its own
error code, and the good streams never see it.

The capture time (``ts``) is compared with the message's own Kafka timestamp (set by the
producer, or by the broker with ``LogAppendTime``): audio is sent after it is recorded, so a
``ts`` well after that timestamp cannot be true. An old ``ts`` is legitimate in many setups
(recorded audio replayed, an edge buffer emptied after an outage), so that bound is off unless
configured.
"""
from __future__ import annotations

from dataclasses import dataclass

from monitor.config import ServiceConfig
from monitor.sources.kafka_audio import BadMessage

NS_PER_S = 1_000_000_000


@dataclass(frozen=True)
class Bounds:
    """``service.max_chunk_s`` / ``max_ts_ahead_s`` / ``max_ts_behind_s`` (0 = unchecked)."""

    max_chunk_s: float | None = None
    max_ahead_ns: int | None = None
    max_behind_ns: int | None = None

    @classmethod
    def from_config(cls, s: ServiceConfig) -> Bounds:
        return cls(max_chunk_s=s.max_chunk_s or None,
                   max_ahead_ns=int(s.max_ts_ahead_s * NS_PER_S) or None,
                   max_behind_ns=int(s.max_ts_behind_s * NS_PER_S) or None)

    def check_time(self, first_ns: int, last_ns: int, message_ms: int | None) -> None:
        """Raise ``BadMessage`` when capture times ``first_ns..last_ns`` are implausible for a
        message stamped ``message_ms`` (ms since epoch; None or negative: no timestamp, no check)."""
        if message_ms is None or message_ms < 0:
            return
        msg_ns = message_ms * 1_000_000
        if self.max_ahead_ns is not None and last_ns - msg_ns > self.max_ahead_ns:
            raise BadMessage("ts-ahead-of-message", f"capture time {_iso(last_ns)} is "
                             f"{(last_ns - msg_ns) / NS_PER_S:,.0f} s after the message's Kafka timestamp "
                             f"{_iso(msg_ns)} (service.max_ts_ahead_s = {self.max_ahead_ns / NS_PER_S:g})")
        if self.max_behind_ns is not None and msg_ns - first_ns > self.max_behind_ns:
            raise BadMessage("ts-behind-message", f"capture time {_iso(first_ns)} is "
                             f"{(msg_ns - first_ns) / NS_PER_S:,.0f} s before the message's Kafka timestamp "
                             f"{_iso(msg_ns)} (service.max_ts_behind_s = {self.max_behind_ns / NS_PER_S:g})")


def message_timestamp(m) -> int | None:
    """The record's Kafka timestamp in ms (kafka-python's ``ConsumerRecord`` or our ``Record``)."""
    ts = getattr(m, "timestamp", None)
    return ts if isinstance(ts, int) and ts >= 0 else None


def _iso(ns: int) -> str:
    from datetime import datetime, timezone  # noqa: PLC0415

    try:
        return datetime.fromtimestamp(ns / NS_PER_S, tz=timezone.utc).isoformat(timespec="seconds")
    except (OverflowError, OSError, ValueError):
        return f"{ns} ns"
