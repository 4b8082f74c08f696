"""What the bounded event stores share: the folder's bounds and index, and the in-memory ring.

An event store keeps, per stream, the recent stretch of its input in memory (``Ring``) and,
when a machine event opens and again when it closes, writes that event's stretch to its folder:
``<event_id>.wav`` with ``<event_id>.json`` beside it for audio (``event_audio.py``), only
``<event_id>.json`` for sensor rows (``sensor_events.py``). Both kinds may share one folder
(the service's ``sinks.event_audio``). The folder is bounded by ``max_bytes`` and ``max_events``
over every event in it, whatever its kind; the oldest events go first. An event is the files
named by its id: its primary file (the wav, else the json) dates it, and all of them count and
go together. Files are written under a temporary name and renamed, so a reader never sees half
a file; nothing is read or written outside the folder.
"""
from __future__ import annotations

import json
import os
import time
from collections import OrderedDict, deque
from pathlib import Path
from typing import Any

import numpy as np

from monitor.errors import ConfigError
from monitor.sources.base import float_from_pcm16

#: Seconds between rescans of the store's folder (see ``EventStore._index``).
RESCAN_S = 30.0
#: The file kinds an event may have, the primary one (which dates the event) first.
SUFFIXES = (".wav", ".json")


def check_bounds(what: str, max_bytes: int, max_events: int, spec: object) -> None:
    if max_bytes <= 0 or max_events <= 0:
        raise ConfigError(f"{what}: max_bytes and max_events must be positive ({spec})")


class Ring:
    """The recent samples (audio) or grid rows (sensors) of one stream on its absolute grid.

    Chunks are kept as they came (int16 where they arrived so: half the memory) and dropped
    whole once older than what must be kept, so a chunk costs O(1): joining them into one
    array per chunk copied ``retain_s`` of audio each time (~640 kB per 100 ms chunk at 16 kHz
    and 10 s, ~6 GB/s at 1,000 streams). They are joined only for an event's stretch. Rows of
    several channels are ``[n, C]`` arrays; ``dtype`` is what non-int16 chunks are kept as
    (float32 audio; float64 sensor values, exactly as read).
    """

    def __init__(self, sample_rate: float, dtype: type = np.float32) -> None:
        self.sample_rate = sample_rate
        self.dtype = dtype
        self.chunks: deque[np.ndarray] = deque()
        self.start = self.end = 0
        self.pin: int | None = None

    def append(self, start_sample: int, samples: np.ndarray) -> None:
        if start_sample != self.end or not self.chunks:  # a gap or a restart: begin afresh
            self.chunks.clear()
            self.start = self.end = start_sample
        self.chunks.append(samples if samples.dtype == np.int16 else np.asarray(samples, self.dtype))
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
        if parts:
            return np.concatenate(parts)
        tail = self.chunks[0].shape[1:] if self.chunks else ()
        return np.zeros((0, *tail), self.dtype)


class EventStore:
    """The bounded folder of event files: written atomically, indexed, oldest evicted first."""

    def __init__(self, folder: str | Path, *, max_bytes: int, max_events: int) -> None:
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.max_bytes, self.max_events = max_bytes, max_events
        self.written = 0
        self.evicted = 0
        # the stored events (id -> bytes of all its files), oldest first: kept in memory so a
        # write does not list and stat the whole folder (that was half the worker's time at
        # ~40 events/s); rescanned every RESCAN_S for files other processes added or removed
        self._index: OrderedDict[str, int] | None = None
        self._total = 0
        self._scanned_at = 0.0

    def path(self, event_id: str, suffix: str) -> Path:
        """An event's file: always directly inside the folder (an id is a plain file name)."""
        name = f"{event_id}{suffix}"
        if not event_id or Path(name).name != name or event_id.startswith(".") or "\\" in name:
            raise ValueError(f"event id {event_id!r} is not a plain file name")
        return self.folder / name

    # -- writing --------------------------------------------------------------------------
    def _write_json(self, event_id: str, doc: dict[str, Any]) -> int:
        """``<event_id>.json`` written atomically; returns its size in bytes."""
        data = (json.dumps(doc, indent=1) + "\n").encode()
        dest = self.path(event_id, ".json")
        tmp = dest.with_suffix(".tmp.json")
        tmp.write_bytes(data)
        os.replace(tmp, dest)
        return len(data)

    def _stored(self, event_id: str, size: int) -> None:
        """The files of ``event_id`` were (re)written, ``size`` bytes in all: it is now the
        newest event; the oldest go while the folder is over its bounds."""
        self.written += 1
        if self._index is None or time.monotonic() - self._scanned_at > RESCAN_S:
            self._scan()  # finds this event's files too
        else:
            self._total += size - self._index.pop(event_id, 0)
            self._index[event_id] = size
        self._evict()

    # -- the folder -----------------------------------------------------------------------
    def _files(self) -> dict[str, dict[str, Path]]:
        """Event id -> its files by suffix (temporary files of a write in progress left out)."""
        found: dict[str, dict[str, Path]] = {}
        for p in self.folder.iterdir():
            name = p.name
            if ".tmp." in name or not p.is_file():
                continue
            for suffix in SUFFIXES:
                if name.endswith(suffix) and len(name) > len(suffix):
                    found.setdefault(name[:-len(suffix)], {})[suffix] = p
                    break
        return found

    def entries(self) -> list[Path]:
        """Each stored event's primary file (its wav, else its json), oldest first."""
        return [p for _, p, _ in self._listing()]

    def _listing(self) -> list[tuple[str, Path, int]]:
        rows = []
        for eid, files in self._files().items():
            primary = next(files[s] for s in SUFFIXES if s in files)
            try:
                mtime = primary.stat().st_mtime_ns
            except FileNotFoundError:
                continue
            rows.append((mtime, primary.name, eid, primary, sum(_size(p) for p in files.values())))
        rows.sort()
        return [(eid, primary, size) for _, _, eid, primary, size in rows]

    def _scan(self) -> None:
        self._index = OrderedDict((eid, size) for eid, _, size in self._listing())
        self._total = sum(self._index.values())
        self._scanned_at = time.monotonic()

    def _evict(self) -> None:
        index = self._index if self._index is not None else OrderedDict()
        while index and (len(index) > self.max_events or self._total > self.max_bytes):
            old, size = index.popitem(last=False)
            self._total -= size
            for suffix in SUFFIXES:
                self.path(old, suffix).unlink(missing_ok=True)
            self.evicted += 1


def _size(p: Path) -> int:
    try:
        return p.stat().st_size
    except FileNotFoundError:
        return 0
