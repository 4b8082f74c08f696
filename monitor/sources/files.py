"""Recorded audio files replayed as streams, as fast as possible or at real-time pace.

One stream per file by default; ``concat=True`` plays a folder's clips back to back as one
stream per machine (the clips' section / id, else the folder name). At real-time pace each
chunk is released when its last sample would have been captured and carries that capture
time, so the replay measures the same capture-to-score latency as a microphone.
"""
from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from monitor.datasets import Clip, ReadReport, read_clip
from monitor.sources.base import AudioChunk


class FileSource:
    def __init__(self, clips: list[Clip], *, sample_rate: int, chunk_ms: float = 100.0,
                 realtime: bool = False, concat: bool = False, min_samples: int = 0,
                 report: ReadReport | None = None, channel: int | str | None = None) -> None:
        if chunk_ms <= 0:
            raise ValueError(f"chunk_ms must be positive, got {chunk_ms}")
        self.clips, self.sample_rate = clips, sample_rate
        self.chunk = max(1, round(sample_rate * chunk_ms / 1000))
        self.realtime, self.concat, self.min_samples = realtime, concat, min_samples
        self.report = report if report is not None else ReadReport()
        self.files_done = 0
        self.channel = channel  # of multi-channel files: an index or "mean" (None: mono only)
        self.stopped = False

    def open(self) -> "FileSource":
        return self

    def stop(self) -> None:
        """End the replay after the chunk in hand (from a signal handler: only a flag)."""
        self.stopped = True

    def close(self) -> None:
        """Nothing to release (the source interface: microphones close their device)."""

    def streams(self) -> list[tuple[str, list[Clip]]]:
        if not self.concat:
            return [(c.path.stem, [c]) for c in self.clips]
        groups: dict[str, list[Clip]] = {}
        for c in self.clips:
            key = f"{c.path.parent.name}/section_{c.section}" if c.section else c.path.parent.name
            groups.setdefault(key, []).append(c)
        return list(groups.items())

    def __iter__(self) -> Iterator[AudioChunk]:
        t_start = time.monotonic()
        played = 0  # samples played so far, for real-time pacing across all streams
        for stream, clips in self.streams():
            pos = 0
            audios = []
            for c in clips:
                a = read_clip(c.path, sample_rate=self.sample_rate, min_samples=self.min_samples,
                              report=self.report, channel=self.channel)
                if a is not None:
                    audios.append(a)
            audio = np.concatenate(audios) if len(audios) > 1 else (audios[0] if audios else None)
            self.files_done += len(clips)
            if audio is None:
                continue
            machine = clips[0].path.parent.parent.name or None
            for i in range(0, len(audio), self.chunk):
                part = audio[i:i + self.chunk]
                captured = None
                if self.realtime:
                    played += len(part)
                    delay = t_start + played / self.sample_rate - time.monotonic()
                    if delay > 0:
                        time.sleep(delay)
                    captured = time.time() - len(part) / self.sample_rate
                yield AudioChunk(stream, part, self.sample_rate, pos,
                                 end_of_stream=i + self.chunk >= len(audio), machine=machine,
                                 capture_time_s=captured)
                pos += len(part)
                if self.stopped:
                    return
