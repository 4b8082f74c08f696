"""Drive any audio source through ``StreamRunner``: the loop ``listen`` and ``replay`` share.

A source is anything that iterates ``AudioChunk``s in order per stream (``FileSource``,
``MicrophoneSource``); optional ``close()`` and ``stats`` are used when present. The loop adds
what a live input needs on top of scoring, the same for every source:

- input health per alerting window (``workers.input_health``): ``clipping`` and
  ``dead-input`` events, and dead windows kept out of machine alerting (silence is not a
  machine anomaly);
- gaps: a chunk that does not start where the previous one ended (a dropped capture block)
  raises an ``input-dropout`` event and restarts the stream at the new position, so no window
  is scored across missing audio; the window grid stays on the capture's sample index;
- capture-to-score latency: for each window, the time from the capture of the newest sample
  its score depends on (the end of its last scorer vector) to the score being known (chunks
  carry ``capture_time_s``).
"""
from __future__ import annotations

import logging
import math
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from workers.input_health import AudioHealth, AudioHealthSpec, HealthTransition, WindowLevel
from workers.model import LoadedModel
from workers.windowing import WindowScore

from monitor.alerting import HysteresisSpec, make_event
from monitor.runtime.runner import StreamRunner
from monitor.sinks.base import Sink
from monitor.sources.base import AudioChunk

log = logging.getLogger(__name__)

DROPOUT = "input-dropout"


def training_level_dbfs(model: LoadedModel) -> float | None:
    """The reference level for ``dead-input``: the training windows' 1st-percentile RMS level."""
    lv = (model.meta.get("input_level") or {}).get("window_rms_dbfs") or {}
    v = lv.get("p1")
    return float(v) if isinstance(v, (int, float)) and math.isfinite(v) else None


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


class _GatedAlerts:
    """Wraps one stream's ``StreamAlerts``: input health first, machine alerting after.

    Windows of a dead input are kept out of the machine alerting (and reported as
    ``dead-input`` instead); clipped windows are still scored and alerted, and also reported.
    """

    def __init__(self, inner, health: AudioHealth) -> None:
        self.__dict__["inner"] = inner
        self.__dict__["health"] = health
        self.__dict__["finish_reason"] = None
        self.__dict__["level"] = None

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def __setattr__(self, name: str, value: Any) -> None:
        if name in self.__dict__:
            self.__dict__[name] = value
        else:
            setattr(self.inner, name, value)

    def update(self, w: WindowScore) -> list[dict[str, Any]]:
        level, transitions = self.health.assess(w.start_sample, w.end_sample)
        self.__dict__["level"] = level
        out = [self._event(t) for t in transitions]
        dead, _ = self.health.is_dead(level)
        if not dead:
            out.extend(self.inner.update(w))
        return out

    def finish(self, reason: str = "end-of-stream") -> list[dict[str, Any]]:
        reason = self.finish_reason or reason
        out = self.inner.finish(reason)
        return out + [self._event(t, reason) for t in self.health.finish()]

    def _event(self, t: HealthTransition, reason: str | None = None) -> dict[str, Any]:
        c = self.inner.ctx
        extra = dict(t.fields)
        if reason and "closed_by" in extra:
            extra["closed_by"] = reason
        return make_event(status=t.status, kind=t.kind, stream=c.stream, machine=c.machine,
                          scorer=c.scorer, model_version=c.model_version, start_sample=t.start_sample,
                          end_sample=t.end_sample, sample_rate=c.sample_rate,
                          time_origin_s=c.time_origin_s, detail=t.detail, **extra)


class LiveRunner(StreamRunner):
    """``StreamRunner`` plus per-stream input health (``health=None`` turns it off)."""

    def __init__(self, model: LoadedModel, sink: Sink | None = None, *,
                 health: AudioHealthSpec | None = AudioHealthSpec(),
                 hysteresis: HysteresisSpec = HysteresisSpec(), keep_windows: bool = False,
                 on_window: Callable[[WindowScore], None] | None = None) -> None:
        super().__init__(model, sink, hysteresis=hysteresis, keep_windows=keep_windows,
                         on_window=on_window)
        self.health_spec = health
        self.reference_dbfs = training_level_dbfs(model)

    def push(self, chunk: AudioChunk, **kwargs: Any) -> None:
        new = chunk.stream not in self.alerts
        super().push(chunk, **kwargs)
        if self.health_spec is None:
            return
        if new:
            length, hop = self.model.window.samples(chunk.sample_rate)
            health = AudioHealth(length=length, hop=hop, spec=self.health_spec,
                                 reference_dbfs=self.reference_dbfs,
                                 min_silence=self.model.frontend.frame_hop)
            self.alerts[chunk.stream] = _GatedAlerts(self.alerts[chunk.stream], health)
        self.alerts[chunk.stream].health.push(chunk.samples, start_sample=chunk.start_sample)

    def level(self, stream: str) -> WindowLevel | None:
        """The input level of the stream's latest window (None before the first one)."""
        a = self.alerts.get(stream)
        return getattr(a, "level", None) if isinstance(a, _GatedAlerts) else None

    def input_dead(self, stream: str) -> bool:
        """Whether the stream's latest window was kept out of alerting as a dead input."""
        a = self.alerts.get(stream)
        lv = getattr(a, "level", None) if isinstance(a, _GatedAlerts) else None
        return lv is not None and a.health.is_dead(lv)[0]

    def open_events(self) -> int:
        return sum(a.open is not None for a in self.alerts.values())

    def restart_stream(self, stream: str, *, reason: str) -> list[dict[str, Any]]:
        """End ``stream`` (its open events close with ``closed_by=reason``); its next chunk
        starts it afresh at that chunk's ``start_sample``."""
        a = self.alerts.get(stream)
        if a is None:
            return []
        if isinstance(a, _GatedAlerts):
            a.finish_reason = reason
        events = self.flush()
        return events + self.end_stream(stream)


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


def drive(source: Iterable[AudioChunk], runner: LiveRunner, *, sink: Sink | None = None,
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
