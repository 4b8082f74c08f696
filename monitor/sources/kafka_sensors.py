"""Sensor readings from a Kafka topic (DESIGN §4.3): JSON, one reading or a list of them.

Key = stream id; value = ``{"ts": <ns since epoch or ISO-8601>, "values": {"temp": 71.2, ...}}``
or a JSON list of such objects. Everything is validated here so that a malformed reading goes
to the dead-letter topic with a reason instead of reaching a scorer.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass
from datetime import datetime, timezone

from monitor.sources.kafka_audio import BadMessage, stream_id


@dataclass
class SensorReading:
    ts_ns: int
    values: dict[str, float]


def parse_ts_ns(ts, where: str) -> int:
    """A reading's ``ts`` (ns since epoch, or ISO-8601 text; naive = UTC) as ns since epoch;
    anything else is a ``bad-ts`` ``BadMessage`` naming ``where``."""
    if isinstance(ts, bool):
        raise BadMessage("bad-ts", f"{where}: ts must be ns since epoch or ISO-8601, got {ts!r}")
    if isinstance(ts, int):
        if ts < 0:
            raise BadMessage("bad-ts", f"{where}: ts {ts} is negative")
        return ts
    if isinstance(ts, float) and math.isfinite(ts) and ts >= 0:
        return int(ts)
    if isinstance(ts, str):
        try:
            dt = datetime.fromisoformat(ts.replace("Z", "+00:00"))
        except ValueError:
            raise BadMessage("bad-ts", f"{where}: ts {ts[:40]!r} is not ISO-8601") from None
        if dt.tzinfo is None:
            dt = dt.replace(tzinfo=timezone.utc)
        return int(round(dt.timestamp() * 1e9))
    raise BadMessage("bad-ts", f"{where}: ts must be ns since epoch or ISO-8601, got {ts!r}"[:200])


def _reading(obj, where: str) -> SensorReading:
    if not isinstance(obj, dict):
        raise BadMessage("bad-reading", f"{where}: expected an object, got {type(obj).__name__}")
    extra = set(obj) - {"ts", "values"}
    if "ts" not in obj or "values" not in obj:
        raise BadMessage("bad-reading", f"{where}: needs keys 'ts' and 'values'")
    if extra:
        raise BadMessage("bad-reading", f"{where}: unknown key(s) {', '.join(sorted(extra))[:80]}")
    values = obj["values"]
    if not isinstance(values, dict) or not values:
        raise BadMessage("bad-values", f"{where}: values must be a non-empty object of numbers")
    out = {}
    for name, v in values.items():
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            raise BadMessage("bad-values", f"{where}: values.{name} = {v!r} is not a number"[:200])
        if not math.isfinite(v):
            raise BadMessage("bad-values", f"{where}: values.{name} is not finite")
        out[str(name)] = float(v)
    return SensorReading(parse_ts_ns(obj["ts"], where), out)


def decode_sensors(key: bytes | None, value: bytes | None) -> tuple[str, list[SensorReading]]:
    """One Kafka message -> (stream id, readings in message order); raises ``BadMessage``."""
    stream = stream_id(key)
    if not value:
        raise BadMessage("empty-value", "the message is empty")
    try:
        doc = json.loads(value)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BadMessage("bad-json", f"not JSON ({str(exc)[:80]})") from None
    items = doc if isinstance(doc, list) else [doc]
    if not items:
        raise BadMessage("bad-reading", "an empty list of readings")
    return stream, [_reading(o, f"reading {i}") for i, o in enumerate(items)]

