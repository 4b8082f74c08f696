"""Drive any audio source through ``StreamRunner``: the loop ``listen`` and ``replay`` share.

A source is anything that iterates ``AudioChunk``s in order per stream (``FileSource``,
``MicrophoneSource``, ``StdinSource``); optional ``close()`` and ``stats`` are used when present.
Input health is the runner's own (``StreamRunner(health=...)``). The loop adds what a live input
needs on top of scoring, the same for every source:

- gaps: a chunk that does not start where the previous one ended (a dropped capture block)
  raises an ``input-dropout`` event and restarts the stream at the new position, so no window
  is scored across missing audio; the window grid stays on the capture's sample index;
- capture-to-score latency: for each window, the time from the capture of the newest sample
  its score depends on (the end of its last scorer vector) to the score being known (chunks
  carry ``capture_time_s``).
"""
from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from workers.model import LoadedModel
from workers.windowing import WindowScore

from monitor.alerting import make_event
from monitor.runtime.runner import StreamRunner
from monitor.sinks.base import Sink
from monitor.sources.base import AudioChunk

log = logging.getLogger(__name__)

DROPOUT = "input-dropout"


class LatencyStats:
    """Capture-to-score latencies (seconds) of the most recent ``keep`` windows."""

    def __init__(self, *, keep: int = 100_000) -> None:
        self.values: deque[float] = deque(maxlen=keep)
        self.count = 0

    def add(self, seconds: float) -> None:
        self.values.append(seconds)
        self.count += 1

    def quantile(self, q: float) -> float | None:
        return float(np.quantile(np.fromiter(self.values, float), q)) if self.values else None

    def summary(self) -> dict[str, Any]:
        if not self.values:
            return {"windows": 0}
        v = np.fromiter(self.values, float)
        return {"windows": self.count, "p50_ms": round(1000 * float(np.quantile(v, 0.5)), 2),
                "p99_ms": round(1000 * float(np.quantile(v, 0.99)), 2),
                "max_ms": round(1000 * float(v.max()), 2)}


def warm_up(model: LoadedModel) -> None:
    """Score one window of noise once, so the first live window does not pay for lazy
    initialisation (allocator, kernels) and its latency is the steady-state one."""
    sr = model.frontend.sample_rate
    length, _ = model.window.samples(sr)
    noise = np.random.default_rng(0).standard_normal(length + model.vector_span).astype(np.float32)
    r = StreamRunner(model)
    r.feed(AudioChunk("warm-up", 1e-3 * noise, sr, 0, end_of_stream=True))


def dropout_events(*, runner: StreamRunner, chunk: AudioChunk, expected: int) -> list[dict[str, Any]]:
    """An ``input-dropout`` event (open, then closed) for samples ``[expected, chunk.start)``."""
    lost = chunk.start_sample - expected
    common = dict(kind=DROPOUT, stream=chunk.stream, machine=chunk.machine, scorer=runner.model.name,
                  model_version=runner.model.version, start_sample=expected,
                  end_sample=chunk.start_sample, sample_rate=chunk.sample_rate,
                  time_origin_s=chunk.time_origin_s, lost_samples=int(lost),
                  detail=f"{lost} samples ({lost / chunk.sample_rate:.3f} s) of input lost")
    return [make_event(status="open", **common), make_event(status="closed", **common)]


@dataclass
class DriveResult:
    events: list[dict[str, Any]] = field(default_factory=list)
    chunks: int = 0
    samples: int = 0
    windows: int = 0
    dropouts: int = 0
    stopped_by: str = "end-of-input"
    latency: LatencyStats = field(default_factory=LatencyStats)


class _Captures:
    """Capture times of recent chunks of one stream, to date any sample in them."""

    def __init__(self) -> None:
        self.chunks: deque[tuple[int, int, float, int]] = deque(maxlen=256)

    def add(self, chunk: AudioChunk) -> None:
        if chunk.capture_time_s is not None:
            self.chunks.append((chunk.start_sample, len(chunk.samples), chunk.capture_time_s,
                                chunk.sample_rate))

    def time_of(self, sample: int) -> float | None:
        for start, n, t, sr in reversed(self.chunks):
            if start <= sample < start + n:
                return t + (sample - start) / sr
            if start + n <= sample:
                return None
        return None


def drive(source: Iterable[AudioChunk], runner: StreamRunner, *, sink: Sink | None = None,
          on_chunk: Callable[[AudioChunk], None] | None = None,
          on_window: Callable[[WindowScore, float | None], None] | None = None,
          on_events: Callable[[list[dict[str, Any]]], None] | None = None,
          flush_every_chunk: bool = True) -> DriveResult:
    """Run ``source`` through ``runner`` until it ends (or raises KeyboardInterrupt, which
    ends the run cleanly: open events are closed and everything is flushed to ``sink``).

    ``on_window(w, latency_s)`` sees every scored window with its capture-to-score latency
    (None when the source gives no capture times).
    """
    res = DriveResult()
    sink = sink if sink is not None else runner.sink
    expected: dict[str, int] = {}
    captures: dict[str, _Captures] = {}
    pending: list[WindowScore] = []
    previous = runner.on_window

    def window_seen(w: WindowScore) -> None:
        if previous is not None:
            previous(w)
        pending.append(w)

    runner.on_window = window_seen

    def deliver(events: list[dict[str, Any]]) -> None:
        if events:
            res.events.extend(events)
            if on_events is not None:
                on_events(events)

    stride, span = runner.model.vector_stride, runner.model.vector_span

    def settle() -> None:
        now = time.time()
        for w in pending:
            # the newest sample the window's score depends on: the end of its last vector
            last = ((w.end_sample - span) // stride) * stride + span - 1
            t_cap = captures[w.stream].time_of(last) if w.stream in captures else None
            lat = now - t_cap if t_cap is not None else None
            if lat is not None:
                res.latency.add(lat)
            res.windows += 1
            if on_window is not None:
                on_window(w, lat)
        pending.clear()

    try:
        for chunk in source:
            res.chunks += 1
            res.samples += len(chunk.samples)
            if on_chunk is not None:
                on_chunk(chunk)
            exp = expected.get(chunk.stream)
            events: list[dict[str, Any]] = []
            if exp is not None and chunk.start_sample != exp:
                res.dropouts += 1
                events += runner.restart_stream(chunk.stream, reason=DROPOUT)
                settle()
                lost = dropout_events(runner=runner, chunk=chunk, expected=exp)
                for e in lost:
                    if runner.sink is not None:
                        runner.sink.write(e)
                events += lost
                log.warning("input dropout: %d samples lost", chunk.start_sample - exp,
                            extra={"stream": chunk.stream, "start_sample": exp,
                                   "end_sample": chunk.start_sample})
            captures.setdefault(chunk.stream, _Captures()).add(chunk)
            runner.push(chunk)
            if flush_every_chunk or chunk.end_of_stream:
                events += runner.flush()
                settle()
            if chunk.end_of_stream:
                events += runner.end_stream(chunk.stream)
                expected.pop(chunk.stream, None)
                captures.pop(chunk.stream, None)
            else:
                expected[chunk.stream] = chunk.start_sample + len(chunk.samples)
            deliver(events)
            if sink is not None and events:
                sink.flush()
    except KeyboardInterrupt:
        res.stopped_by = "interrupt"
    finally:
        events = runner.flush()
        settle()
        close = getattr(source, "close", None)
        if callable(close):  # after scoring: closing a device may block while it drains
            close()
        for stream in list(runner.alerts):
            events += runner.end_stream(stream)
        deliver(events)
        runner.on_window = previous
        if sink is not None:
            sink.flush()
    return res
