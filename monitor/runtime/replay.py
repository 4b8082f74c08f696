"""Replay recorded audio through the streaming path (the code the service runs).

Files are a source like the microphone: ``FileSource`` chunks go through the same
``monitor.runtime.drive.drive`` loop and ``StreamRunner`` as ``monitor listen``, at real-time pace
(``realtime=True``, with capture-to-score latency measured) or as fast as possible.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from workers.input_health import AudioHealthSpec
from workers.model import LoadedModel

from monitor.alerting import HysteresisSpec
from monitor.datasets import ReadReport, list_clips, require_usable
from monitor.runtime.drive import DriveResult, drive
from monitor.runtime.runner import StreamRunner
from monitor.runtime.runner import StreamResult
from monitor.sinks.base import Sink
from monitor.sources.files import FileSource


@dataclass
class ReplayResult:
    streams: list[StreamResult]
    events: list[dict[str, Any]]
    read: ReadReport
    sample_rate: int
    drive: DriveResult | None = None


def replay(model: LoadedModel, data: str | Path, *, sink: Sink | None = None, chunk_ms: float = 100.0,
           realtime: bool = False, concat: bool = False, progress=None,
           health: AudioHealthSpec | None = None, hysteresis: HysteresisSpec = HysteresisSpec(),
           on_window=None, channel: int | str | None = None) -> ReplayResult:
    """Replay the clips of ``data``; ``health`` adds the live input checks (clipping, dead input
    kept out of alerting) that ``monitor listen`` and the service run; ``on_window(w, latency_s)``
    sees every scored window."""
    clips = list_clips(data)
    sr = model.frontend.sample_rate
    report = ReadReport()
    source = FileSource(clips, sample_rate=sr, chunk_ms=chunk_ms, realtime=realtime, concat=concat,
                        min_samples=model.window.samples(sr)[0], report=report, channel=channel)
    runner = StreamRunner(model, sink, keep_windows=True, health=health, hysteresis=hysteresis)
    done = [0]

    def on_chunk(_chunk) -> None:
        if progress is not None and source.files_done != done[0]:
            progress(source.files_done - done[0])
            done[0] = source.files_done

    res = drive(source, runner, sink=sink, on_chunk=on_chunk, on_window=on_window)
    if progress is not None and source.files_done != done[0]:
        progress(source.files_done - done[0])
    require_usable(data, len(clips), report.read, report)
    return ReplayResult(runner.finished, res.events, report, sr, res)


def window_series(result: StreamResult, sample_rate: int) -> tuple[np.ndarray, np.ndarray]:
    t = np.array([w.start_sample / sample_rate for w in result.windows])
    s = np.array([w.score for w in result.windows])
    return t, s
