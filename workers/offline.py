"""Whole clips through the streaming scoring loop (training's threshold fit, evaluation).

Clips go through ``ScoringPipeline`` as single chunks, so their vector and window scores are
the ones a live stream of the same audio gets.
"""
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from .model import LoadedModel
from .pipeline import ScoringPipeline
from .windowing import WindowScore


@dataclass
class ClipResult:
    name: str
    clip_score: float
    windows: list[WindowScore]
    vector_scores: np.ndarray


def score_clips(model: LoadedModel, clips: Iterable[tuple[str, np.ndarray]], *,
                clips_per_batch: int = 8, max_batch: int = 4096) -> list[ClipResult]:
    """Score clips a few at a time in one batch; returns one result per clip, in order."""
    pipe = ScoringPipeline(model, max_batch=max_batch, record_vectors=True)
    results: list[ClipResult] = []
    group: list[str] = []

    def drain() -> None:
        windows: dict[str, list[WindowScore]] = {n: [] for n in group}
        for w in pipe.flush():
            windows[w.stream].append(w)
        for n in group:
            s = pipe.end_stream(n)
            results.append(ClipResult(n, s.clip_score, windows[n], s.all_vector_scores()))
        group.clear()

    for name, audio in clips:
        if name in group:
            raise ValueError(f"clip name {name!r} given twice")
        group.append(name)
        pipe.push(name, audio)
        if len(group) >= clips_per_batch:
            drain()
    drain()
    return results
