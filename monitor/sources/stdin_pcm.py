"""Raw PCM on standard input as one live stream: ``arecord ... | monitor listen --input -``.

Any program that writes raw little-endian PCM at the model's sample rate can feed the monitor
through a pipe: ``arecord -f S16_LE -r 16000 -c 1 -t raw`` for a sound card ALSA knows,
``ffmpeg -i rtsp://camera/... -ac 1 -ar 16000 -f s16le -`` for the sound of an IP camera. Mono
only (ask the producer to downmix); ``s16le`` or ``f32le``. Blocks are read whole, so a chunk
holds exactly ``block_ms`` of audio except the last one, which ends the stream.
"""
from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import BinaryIO

import numpy as np

from monitor.sources.base import AudioChunk, CaptureStats, float_from_pcm16

FORMATS = {"s16le": np.dtype("<i2"), "f32le": np.dtype("<f4")}


@dataclass(frozen=True)
class PipeInput:
    """What ``listen`` reports as the input device."""

    name: str = "stdin"
    index: int | None = None


class StdinSource:
    """Iterate to get ``AudioChunk``s of raw PCM read from ``stream_in`` until end of file."""

    #: what ``monitor listen`` passes besides the settings every live source takes (``--format``)
    listen_options = ("fmt",)

    def __init__(self, *, sample_rate: int, stream: str = "stdin", machine: str | None = None,
                 block_ms: float = 100.0, fmt: str = "s16le", stream_in: BinaryIO | None = None,
                 max_samples: int | None = None) -> None:
        if fmt not in FORMATS:
            raise ValueError(f"format {fmt!r}: expected one of {', '.join(FORMATS)}")
        if block_ms <= 0:
            raise ValueError(f"block_ms must be positive, got {block_ms}")
        self.rate, self.stream, self.machine = sample_rate, stream, machine
        self.dtype = "int16" if fmt == "s16le" else "float32"
        self.fmt = FORMATS[fmt]
        self.block = max(1, round(sample_rate * block_ms / 1000))
        self.stream_in = stream_in
        self.max_samples = max_samples
        self.device = PipeInput()
        self.stats = CaptureStats()
        self.time_origin_s: float | None = None
        self._stopped = False

    def open(self) -> "StdinSource":
        if self.stream_in is None:
            self.stream_in = sys.stdin.buffer
        return self

    def stop(self) -> None:
        self._stopped = True

    def close(self) -> None:
        """The pipe belongs to the shell; nothing to release."""

    def __iter__(self) -> Iterator[AudioChunk]:
        """Chunks as they are read; a short block means end of file and ends the stream (at a
        block boundary the runtime ends the stream when the iteration stops)."""
        if self.stream_in is None:
            self.open()
        width = self.fmt.itemsize
        pos = 0
        while not self._stopped:
            want = self.block if self.max_samples is None else min(self.block, self.max_samples - pos)
            data = _read_exactly(self.stream_in, want * width) if want > 0 else b""
            cut = len(data) - len(data) % width
            if cut == 0:
                return
            raw = np.frombuffer(data[:cut], dtype=self.fmt)
            now, n = time.time(), len(raw)
            if self.time_origin_s is None:
                self.time_origin_s = now - n / self.rate
            pcm16 = raw.astype(np.int16) if self.fmt.kind == "i" else None
            samples = float_from_pcm16(pcm16) if pcm16 is not None else raw.astype(np.float32)
            last = n < self.block
            self.stats.blocks += 1
            self.stats.samples += n
            yield AudioChunk(self.stream, samples, self.rate, pos, end_of_stream=last,
                             machine=self.machine, time_origin_s=self.time_origin_s,
                             capture_time_s=now - n / self.rate, pcm16=pcm16)
            pos += n
            if last:
                return


def _read_exactly(f: BinaryIO, n: int) -> bytes:
    """``n`` bytes, fewer only at end of file (a pipe delivers what the writer wrote so far)."""
    parts, got = [], 0
    while got < n:
        b = f.read(n - got)
        if not b:
            break
        parts.append(b)
        got += len(b)
    return b"".join(parts)
