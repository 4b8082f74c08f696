"""Anomaly events, schema ``anomaly-event/1`` (DESIGN §4.3).

``event_id`` is derived from stream, scorer, model version and the event's start sample, so
a window re-scored after a crash or a replay yields the same id and consumers can dedupe.
"""
from __future__ import annotations

import hashlib
from typing import Any

SCHEMA = "anomaly-event/1"
MACHINE = "machine"
HEALTH_KINDS = ("gap", "input-dropout", "clipping", "dead-input", "flat-line", "out-of-range", "step",
                "stream-idle")


def event_id(*, stream: str, scorer: str, model_version: str, start_sample: int, kind: str = MACHINE) -> str:
    raw = f"{stream}\x1f{scorer}\x1f{model_version}\x1f{kind}\x1f{start_sample}"
    return hashlib.sha256(raw.encode()).hexdigest()[:24]


def make_event(*, status: str, kind: str, stream: str, machine: str | None, scorer: str,
               model_version: str, start_sample: int, end_sample: int, sample_rate: int,
               time_origin_s: float = 0.0, id_base: int = 0, id_kind: str | None = None,
               **fields: Any) -> dict[str, Any]:
    """An event record; ``start``/``end`` are seconds on the stream clock (epoch for live input);
    the id hashes ``id_base + start_sample`` (``AudioChunk.id_base``) and ``id_kind`` (default
    ``kind``; a per-channel condition adds its channel, so two channels never share an id)."""
    ev = {
        "schema": SCHEMA,
        "event_id": event_id(stream=stream, scorer=scorer, model_version=model_version,
                             start_sample=id_base + start_sample, kind=id_kind or kind),
        "status": status,
        "kind": kind,
        "stream": stream,
        "machine": machine,
        "scorer": scorer,
        "model_version": model_version,
        "start": round(time_origin_s + start_sample / sample_rate, 6),
        "end": round(time_origin_s + end_sample / sample_rate, 6),
        "start_sample": int(start_sample),
        "end_sample": int(end_sample),
    }
    ev.update(fields)
    return ev
