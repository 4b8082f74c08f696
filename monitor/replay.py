"""Replay recorded audio through the streaming path (the code the service runs)."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from workers.model import LoadedModel

from .datasets import ReadReport, list_clips
from .runner import StreamResult, StreamRunner
from .sinks.base import Sink
from .sources.files import FileSource


@dataclass
class ReplayResult:
    streams: list[StreamResult]
    events: list[dict[str, Any]]
    read: ReadReport
    sample_rate: int


def replay(model: LoadedModel, data: str | Path, *, sink: Sink | None = None, chunk_ms: float = 100.0,
           realtime: bool = False, concat: bool = False, progress=None) -> ReplayResult:
    clips = list_clips(data)
    sr = model.frontend.sample_rate
    report = ReadReport()
    source = FileSource(clips, sample_rate=sr, chunk_ms=chunk_ms, realtime=realtime, concat=concat,
                        min_samples=model.window.samples(sr)[0], report=report)
    runner = StreamRunner(model, sink, keep_windows=True)
    events: list[dict[str, Any]] = []
    done = 0
    for chunk in source:
        events += runner.feed(chunk)
        if progress is not None and source.files_done != done:
            progress(source.files_done - done)
            done = source.files_done
        if sink is not None and events and chunk.end_of_stream:
            sink.flush()
    events += runner.close()
    if sink is not None:
        sink.flush()
    return ReplayResult(runner.finished, events, report, sr)


def window_series(result: StreamResult, sample_rate: int) -> tuple[np.ndarray, np.ndarray]:
    t = np.array([w.start_sample / sample_rate for w in result.windows])
    s = np.array([w.score for w in result.windows])
    return t, s
