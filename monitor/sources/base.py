"""What every audio source yields: chunks of one stream's samples, in order."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


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
