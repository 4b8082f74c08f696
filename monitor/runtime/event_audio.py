"""A bounded store of the audio behind each anomaly event, so an operator's label has sound.

Per stream, a ring of the most recent ``retain_s`` seconds of audio is kept in memory; while a
machine event is open its start is pinned (up to ``max_event_s``). When an event opens, and
again when it closes, the audio of its windows (``start_sample .. end_sample``) is written as
``<folder>/<event_id>.wav`` (float32, lossless) with ``<event_id>.json`` beside it (the event,
the stream and where the audio lies on the stream's sample grid). The folder is bounded by
``max_bytes`` and ``max_events``; the oldest events are evicted first. ``monitor label`` copies
a labelled event's audio next to the model, so eviction never takes audio a label needs.
"""
from __future__ import annotations

import json
import logging
import os
import time
from collections import OrderedDict, deque
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from monitor.errors import ConfigError
from monitor.sources.base import AudioChunk, float_from_pcm16

log = logging.getLogger(__name__)


#: Seconds between rescans of the store's folder (see ``EventAudioStore._index``).
RESCAN_S = 30.0


@dataclass(frozen=True)
class EventAudioSpec:
    folder: str | Path
    max_bytes: int = 256 * 1024 * 1024
    max_events: int = 1000
    retain_s: float = 10.0
    max_event_s: float = 60.0

    def __post_init__(self) -> None:
        if self.max_bytes <= 0 or self.max_events <= 0:
            raise ConfigError(f"event audio store: max_bytes and max_events must be positive ({self})")
        if self.retain_s <= 0 or self.max_event_s < self.retain_s:
            raise ConfigError(f"event audio store: need 0 < retain_s <= max_event_s ({self})")


class _Ring:
    """The recent samples of one stream on its absolute sample grid.

    Chunks are kept as they came (int16 where they arrived so: half the memory) and dropped
    whole once older than what must be kept, so a chunk costs O(1): joining them into one
    array per chunk copied ``retain_s`` of audio each time (~640 kB per 100 ms chunk at 16 kHz
    and 10 s, ~6 GB/s at 1,000 streams). They are joined only for an event's audio.
    """

    def __init__(self, sample_rate: int) -> None:
        self.sample_rate = sample_rate
        self.chunks: deque[np.ndarray] = deque()
        self.start = self.end = 0
        self.pin: int | None = None

    def append(self, start_sample: int, samples: np.ndarray) -> None:
        if start_sample != self.end or not self.chunks:  # a gap or a restart: begin afresh
            self.chunks.clear()
            self.start = self.end = start_sample
        self.chunks.append(samples if samples.dtype == np.int16 else np.asarray(samples, np.float32))
        self.end += len(samples)

    def trim(self, keep: int, max_keep: int) -> None:
        """Keep at least the last ``keep`` samples (from ``pin`` on, up to ``max_keep``)."""
        lo = self.end - keep
        if self.pin is not None:
            lo = min(lo, max(self.pin, self.end - max_keep))
        while self.chunks and self.start + len(self.chunks[0]) <= lo:
            self.start += len(self.chunks.popleft())

    def slice(self, a: int, b: int) -> np.ndarray:
        a, b = max(a, self.start), min(b, self.end)
        parts, pos = [], self.start
        for c in self.chunks:
            if pos >= b:
                break
            if pos + len(c) > a:
                piece = c[max(a - pos, 0):b - pos]
                parts.append(float_from_pcm16(piece) if piece.dtype == np.int16 else piece)
            pos += len(c)
        return np.concatenate(parts) if parts else np.zeros(0, np.float32)


class EventAudioStore:
    """Keeps recent audio per stream and writes each machine event's audio to ``folder``."""

    def __init__(self, spec: EventAudioSpec) -> None:
        self.spec = spec
        self.folder = Path(spec.folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self._rings: dict[str, _Ring] = {}
        self.written = 0
        self.evicted = 0
        # the stored events, oldest first, with their bytes: kept in memory so a write does
        # not list and stat the whole folder (that was half the worker's time at ~40 events/s);
        # rescanned every RESCAN_S for files other processes added or removed
        self._index: OrderedDict[Path, int] | None = None
        self._total = 0
        self._scanned_at = 0.0

    # -- called by StreamRunner ---------------------------------------------------------
    def on_chunk(self, chunk: AudioChunk) -> None:
        ring = self._rings.get(chunk.stream)
        if ring is None:
            ring = self._rings[chunk.stream] = _Ring(chunk.sample_rate)
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
        return self.folder / f"{event_id}.wav"

    def _write(self, event: dict[str, Any], audio: np.ndarray, ring: _Ring) -> Path:
        import soundfile as sf  # noqa: PLC0415

        wav = self.audio_path(event["event_id"])
        a0 = max(event["start_sample"], ring.start)
        side = {"event": event, "stream": event["stream"], "sample_rate": ring.sample_rate,
                "audio_start_sample": a0, "audio_end_sample": a0 + len(audio),
                "complete": a0 == event["start_sample"] and a0 + len(audio) == event["end_sample"],
                "written": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
        tmp = wav.with_suffix(".tmp.wav")
        sf.write(tmp, audio, ring.sample_rate, subtype="FLOAT")
        os.replace(tmp, wav)
        jtmp = wav.with_suffix(".tmp.json")
        text = json.dumps(side, indent=1) + "\n"
        jtmp.write_text(text)
        os.replace(jtmp, wav.with_suffix(".json"))
        self.written += 1
        self._note(wav, wav.stat().st_size + len(text.encode()))
        self._evict()
        return wav

    def entries(self) -> list[Path]:
        """Stored event wavs, oldest first."""
        wavs = [p for p in self.folder.glob("*.wav") if not p.name.endswith(".tmp.wav")]
        return sorted(wavs, key=lambda p: (p.stat().st_mtime_ns, p.name))

    def _scan(self) -> None:
        self._index = OrderedDict((p, _size(p) + _size(p.with_suffix(".json"))) for p in self.entries())
        self._total = sum(self._index.values())
        self._scanned_at = time.monotonic()

    def _note(self, wav: Path, size: int) -> None:
        """``wav`` was (re)written with ``size`` bytes (wav + json): it is now the newest."""
        if self._index is None or time.monotonic() - self._scanned_at > RESCAN_S:
            self._scan()  # finds ``wav`` too
            return
        self._total += size - self._index.pop(wav, 0)
        self._index[wav] = size

    def _evict(self) -> None:
        index = self._index if self._index is not None else OrderedDict()
        while index and (len(index) > self.spec.max_events or self._total > self.spec.max_bytes):
            old, size = index.popitem(last=False)
            self._total -= size
            old.unlink(missing_ok=True)
            old.with_suffix(".json").unlink(missing_ok=True)
            self.evicted += 1


def _size(p: Path) -> int:
    try:
        return p.stat().st_size
    except FileNotFoundError:
        return 0


def find_event_audio(folder: str | Path, event_id: str) -> tuple[Path, dict[str, Any]] | None:
    """(wav, sidecar) of a stored event, or None when it was never kept or was evicted."""
    wav = Path(folder) / f"{event_id}.wav"
    side = wav.with_suffix(".json")
    if not wav.is_file():
        return None
    meta = json.loads(side.read_text()) if side.is_file() else {}
    return wav, meta
