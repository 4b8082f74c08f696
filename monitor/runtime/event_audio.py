"""A bounded store of the audio behind each anomaly event, so an operator's label has sound.

Per stream, a ring of the most recent ``retain_s`` seconds of audio is kept in memory; while a
machine event is open its start is pinned (up to ``max_event_s``). When an event opens, and
again when it closes, the audio of its windows (``start_sample .. end_sample``) is written as
``<folder>/<event_id>.wav`` (float32, lossless) with ``<event_id>.json`` beside it (the event,
the stream and where the audio lies on the stream's sample grid). The folder is bounded by
``max_bytes`` and ``max_events`` (over every event in it, sensor events' rows too: see
``event_store.py``, which this store shares with ``sensor_events.py``); the oldest events are
evicted first. ``monitor label`` copies a labelled event's audio next to the model, so
eviction never takes audio a label needs.
"""
from __future__ import annotations

import json
import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from monitor.errors import ConfigError
from monitor.runtime.event_store import RESCAN_S, EventStore, Ring, check_bounds
from monitor.sources.base import AudioChunk

__all__ = ["RESCAN_S", "EventAudioSpec", "EventAudioStore", "find_event_audio"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class EventAudioSpec:
    folder: str | Path
    max_bytes: int = 256 * 1024 * 1024
    max_events: int = 1000
    retain_s: float = 10.0
    max_event_s: float = 60.0

    def __post_init__(self) -> None:
        check_bounds("event audio store", self.max_bytes, self.max_events, self)
        if self.retain_s <= 0 or self.max_event_s < self.retain_s:
            raise ConfigError(f"event audio store: need 0 < retain_s <= max_event_s ({self})")


class EventAudioStore(EventStore):
    """Keeps recent audio per stream and writes each machine event's audio to ``folder``."""

    def __init__(self, spec: EventAudioSpec) -> None:
        super().__init__(spec.folder, max_bytes=spec.max_bytes, max_events=spec.max_events)
        self.spec = spec
        self._rings: dict[str, Ring] = {}

    # -- called by StreamRunner ---------------------------------------------------------
    def on_chunk(self, chunk: AudioChunk) -> None:
        ring = self._rings.get(chunk.stream)
        if ring is None:
            ring = self._rings[chunk.stream] = Ring(chunk.sample_rate)
        ring.append(chunk.start_sample, chunk.samples if chunk.pcm16 is None else chunk.pcm16)
        sr = chunk.sample_rate
        ring.trim(round(self.spec.retain_s * sr), round(self.spec.max_event_s * sr))

    def on_event(self, event: dict[str, Any]) -> Path | None:
        """Write (or rewrite) the audio of a machine event; returns the wav path."""
        if event.get("kind", "machine") != "machine":
            return None
        ring = self._rings.get(event["stream"])
        if ring is None:
            return None
        ring.pin = event["start_sample"] if event["status"] == "open" else None
        audio = ring.slice(event["start_sample"], event["end_sample"])
        if not len(audio):
            log.warning("no audio kept for event %s", event["event_id"],
                        extra={"stream": event["stream"], "event_id": event["event_id"]})
            return None
        return self._write(event, audio, ring)

    def end_stream(self, stream: str) -> None:
        self._rings.pop(stream, None)

    # -- files --------------------------------------------------------------------------
    def audio_path(self, event_id: str) -> Path:
        return self.path(event_id, ".wav")

    def _write(self, event: dict[str, Any], audio: np.ndarray, ring: Ring) -> Path:
        import soundfile as sf  # noqa: PLC0415

        eid = event["event_id"]
        wav = self.audio_path(eid)
        a0 = max(event["start_sample"], ring.start)
        side = {"event": event, "stream": event["stream"], "sample_rate": ring.sample_rate,
                "audio_start_sample": a0, "audio_end_sample": a0 + len(audio),
                "complete": a0 == event["start_sample"] and a0 + len(audio) == event["end_sample"],
                "written": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
        tmp = wav.with_suffix(".tmp.wav")
        sf.write(tmp, audio, ring.sample_rate, subtype="FLOAT")
        os.replace(tmp, wav)
        size = wav.stat().st_size + self._write_json(eid, side)
        self._stored(eid, size)
        return wav


def find_event_audio(folder: str | Path, event_id: str) -> tuple[Path, dict[str, Any]] | None:
    """(wav, sidecar) of a stored event, or None when it was never kept or was evicted."""
    wav = Path(folder) / f"{event_id}.wav"
    side = wav.with_suffix(".json")
    if not wav.is_file():
        return None
    meta = json.loads(side.read_text()) if side.is_file() else {}
    return wav, meta
