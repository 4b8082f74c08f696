"""The source contract: what every audio source yields, and the lifecycle it follows.

A source knows nothing of scoring. It is opened, iterated for ``AudioChunk``s (in order per
stream, each placed on its stream's sample grid, with its provenance: stream id, machine,
capture time), asked to ``stop`` (from a signal handler: it must only set a flag) and closed.
``monitor.runtime.drive`` runs any source through the per-stream runtime; live sources are
looked up by name in ``monitor.sources.LIVE``.
"""
from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np


class Source(Protocol):
    """The lifecycle of a source (``FileSource``, ``MicrophoneSource``, ``StdinSource``)."""

    def open(self) -> "Source": ...

    def __iter__(self) -> Iterator["AudioChunk"]: ...

    def stop(self) -> None: ...

    def close(self) -> None: ...


def float_from_pcm16(pcm: np.ndarray) -> np.ndarray:
    """int16 PCM -> float32 in [-1, 1): exact (a power-of-two scale), as soundfile decodes it."""
    return pcm.astype(np.float32) * np.float32(1 / 32768)


@dataclass
class AudioChunk:
    """Mono float32 samples in [-1, 1] of one stream.

    ``start_sample`` places the chunk on the stream's sample grid (0 = the stream's first
    sample); ``time_origin_s`` is the stream clock's time of sample 0 (epoch seconds for live
    input, 0 for files). ``end_of_stream`` marks a stream's last chunk. ``capture_time_s`` is
    when the chunk's first sample was captured (epoch seconds; live sources and real-time
    replay), for the capture-to-score latency; None when unknown. ``id_base`` is the index of
    sample 0 on a grid shared across processes (sensor grids anchored on the epoch lattice:
    origin / step); event ids hash ``id_base + start_sample``, so a stream picked up after a
    restart, whose sample 0 is a later reading, keeps the ids of a clean run. ``pcm16``: the
    same samples as int16 when they arrived so (``samples`` == ``pcm16 / 32768`` exactly), for
    whoever keeps audio for a while: half the memory of ``samples``.
    """

    stream: str
    samples: np.ndarray
    sample_rate: int
    start_sample: int
    end_of_stream: bool = False
    machine: str | None = None
    time_origin_s: float = 0.0
    capture_time_s: float | None = None
    id_base: int = 0
    pcm16: np.ndarray | None = None

    def after(self, n: int) -> "AudioChunk":
        """The same chunk without its first ``n`` samples."""
        cap = self.capture_time_s
        return dataclasses.replace(
            self, samples=self.samples[n:], start_sample=self.start_sample + n,
            pcm16=None if self.pcm16 is None else self.pcm16[n:],
            capture_time_s=None if cap is None else cap + n / self.sample_rate)


@dataclass
class CaptureStats:
    """Counters the callback and the reader keep; read them any time (plain ints)."""

    blocks: int = 0
    samples: int = 0
    overflows: int = 0  # PortAudio said input overflow: the device lost samples before us
    dropped_blocks: int = 0  # our queue was full: the scorer fell behind
    dropped_samples: int = 0
    lost_samples: int = 0  # samples estimated lost at PortAudio overflows (from the ADC clock)
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"blocks": self.blocks, "samples": self.samples, "overflows": self.overflows,
                "dropped_blocks": self.dropped_blocks, "dropped_samples": self.dropped_samples,
                "lost_samples": self.lost_samples}
