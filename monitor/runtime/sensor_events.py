"""A bounded store of the sensor readings behind each machine event of a sensor model.

The sensor counterpart of ``event_audio.py``, sharing its folder, bounds and eviction
(``event_store.py``). Per stream, the recent grid rows (the model's channels on the model's
step, exactly as ``SensorRunner`` grids them, before normalisation) are kept in memory; while a
machine event is open its start is pinned (up to ``max_event_rows``). When the event opens, and
again when it closes, ``<folder>/<event_id>.json`` is written: the event, the channel names,
the step, and the rows from ``context_rows`` before the event's start to ``after_rows`` after
its end (what is there when it is written), each with its grid index and its time on the stream
clock (epoch seconds for live input). A missing value (a channel that never reported) is null.
The json has ``"format": "sensor-rows/1"``; an audio event's json beside its wav has none.

The rows written depend only on the readings, not on how they were chunked, so ``monitor
replay`` of a CSV and the service on the same readings write the same rows: the rows after the
end are the ``m`` closing windows' (``after_rows``), which exist whenever the close is raised.
"""
from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from monitor.alerting import HysteresisSpec
from monitor.errors import ConfigError
from monitor.runtime.event_store import EventStore, Ring, check_bounds
from monitor.sources.base import AudioChunk

log = logging.getLogger(__name__)

FORMAT = "sensor-rows/1"
#: Rows one push may bring ahead of the windows scored (a chunk of a CSV replay is 64 rows; a
#: Kafka poll of a sensor stream is usually fewer): kept on top of what an event's open needs.
CHUNK_SLACK_ROWS = 256
#: The longest open event whose rows are all kept (in seconds of the stream and in rows).
MAX_EVENT_S = 3600.0
MAX_EVENT_ROWS = 20_000


@dataclass(frozen=True)
class SensorEventSpec:
    folder: str | Path
    max_bytes: int = 256 * 1024 * 1024
    max_events: int = 1000
    retain_rows: int = 512       # rows kept per stream in memory
    context_rows: int = 32       # rows written before the event's start
    after_rows: int = 3          # rows written after its end (the closing windows')
    max_event_rows: int = MAX_EVENT_ROWS  # rows of an open event kept, from its start

    def __post_init__(self) -> None:
        check_bounds("sensor event store", self.max_bytes, self.max_events, self)
        if not 0 <= self.context_rows < self.retain_rows <= self.max_event_rows or self.after_rows < 0:
            raise ConfigError("sensor event store: need 0 <= context_rows < retain_rows <= "
                              f"max_event_rows and after_rows >= 0 ({self})")

    @classmethod
    def for_model(cls, model, folder: str | Path, *, hysteresis: HysteresisSpec = HysteresisSpec(),
                  max_bytes: int = 256 * 1024 * 1024, max_events: int = 1000,
                  retain_s: float = 0.0) -> "SensorEventSpec":
        """The rows a sensor model's events need: as context, the rows the first window's
        scores read (``vector_span``) or one alerting window, at least 16; in memory, that
        context plus the windows an event's open looks back over plus ``CHUNK_SLACK_ROWS``
        (or ``retain_s`` of rows, when more)."""
        rate = 1.0 / model.frontend.spec.step_s
        length, hop = model.window.samples(rate)
        length, hop = max(1, length), max(1, hop)
        context = max(int(model.vector_span), length, 16)
        retain = max(math.ceil(retain_s * rate),
                     context + length + hysteresis.n * hop + CHUNK_SLACK_ROWS)
        longest = max(retain, min(math.ceil(MAX_EVENT_S * rate), MAX_EVENT_ROWS))
        return cls(folder, max_bytes=max_bytes, max_events=max_events, retain_rows=retain,
                   context_rows=context, after_rows=hysteresis.m * hop, max_event_rows=longest)


    @classmethod
    def from_sinks(cls, sinks, model, *, hysteresis: HysteresisSpec, folder: str | Path = "") -> "SensorEventSpec | None":
        """The spec a service config's ``sinks`` section gives (``event_audio``, its size bound
        and retain time) for a sensor model, or None when no folder is set. The service's router
        and ``monitor replay`` of a CSV both build theirs here, so they write the same rows."""
        folder = folder or sinks.event_audio
        if not folder:
            return None
        return cls.for_model(model, folder, hysteresis=hysteresis, max_bytes=sinks.event_audio_max_mb << 20,
                             retain_s=sinks.event_audio_retain_s)


class _RowRing(Ring):
    def __init__(self, chunk: AudioChunk) -> None:
        super().__init__(chunk.sample_rate, np.float64)
        self.time_origin_s, self.id_base = chunk.time_origin_s, chunk.id_base


class SensorEventStore(EventStore):
    """Keeps recent grid rows per stream and writes each machine event's rows to ``folder``.

    Driven through the ``StreamRunner`` that ``SensorRunner`` scores with, by the same calls
    as the event-audio store: ``on_chunk`` (grid rows ``[n, C]`` at grid index
    ``start_sample``), ``on_event`` and ``end_stream``.
    """

    def __init__(self, spec: SensorEventSpec, *, channels: list[str] | tuple[str, ...], step_s: float) -> None:
        super().__init__(spec.folder, max_bytes=spec.max_bytes, max_events=spec.max_events)
        self.spec = spec
        self.channels, self.step_s = list(channels), float(step_s)
        self._rings: dict[str, _RowRing] = {}

    def on_chunk(self, chunk: AudioChunk) -> None:
        ring = self._rings.get(chunk.stream)
        if ring is None or ring.time_origin_s != chunk.time_origin_s:
            ring = self._rings[chunk.stream] = _RowRing(chunk)
        rows = np.asarray(chunk.samples, np.float64).reshape(len(chunk.samples), len(self.channels))
        ring.append(chunk.start_sample, rows)
        ring.trim(self.spec.retain_rows, self.spec.max_event_rows + self.spec.context_rows)

    def on_event(self, event: dict[str, Any]) -> Path | None:
        """Write (or rewrite) the rows of a machine event; returns the json path."""
        if event.get("kind", "machine") != "machine":
            return None
        ring = self._rings.get(event["stream"])
        if ring is None:
            return None
        start, end = int(event["start_sample"]), int(event["end_sample"])
        ring.pin = start - self.spec.context_rows if event["status"] == "open" else None
        a = max(start - self.spec.context_rows, ring.start)
        rows = ring.slice(a, end + self.spec.after_rows)
        if not len(rows):
            log.warning("no sensor rows kept for event %s", event["event_id"],
                        extra={"stream": event["stream"], "event_id": event["event_id"]})
            return None
        return self._write(event, a, rows, ring)

    def end_stream(self, stream: str) -> None:
        self._rings.pop(stream, None)

    def rows_path(self, event_id: str) -> Path:
        return self.path(event_id, ".json")

    def _write(self, event: dict[str, Any], a: int, rows: np.ndarray, ring: _RowRing) -> Path:
        eid = event["event_id"]
        b = a + len(rows)
        index = list(range(a, b))
        doc = {"format": FORMAT, "event": event, "stream": event["stream"],
               "channels": self.channels, "step_s": self.step_s,
               "time_origin_s": ring.time_origin_s, "lattice_index": ring.id_base,
               "event_start_index": int(event["start_sample"]), "event_end_index": int(event["end_sample"]),
               "first_index": a, "end_index": b,
               "complete": a <= event["start_sample"] and b >= event["end_sample"],
               "index": index,
               "ts": [round(ring.time_origin_s + k * self.step_s, 6) for k in index],
               "rows": [[v if math.isfinite(v) else None for v in r] for r in rows.tolist()],
               "written": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
        self._stored(eid, self._write_json(eid, doc))
        return self.rows_path(eid)


def find_event_rows(folder: str | Path, event_id: str) -> tuple[Path, dict[str, Any]] | None:
    """(json, its document) of a sensor event's stored rows, or None when there are none
    (never kept, evicted, or an audio event's sidecar)."""
    import json  # noqa: PLC0415

    path = Path(folder) / f"{event_id}.json"
    if not path.is_file() or path.with_suffix(".wav").is_file():
        return None
    try:
        doc = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return (path, doc) if isinstance(doc, dict) and doc.get("format") == FORMAT else None
