"""Chunks in, events out: the per-stream runtime of one model.

Every audio source drives this same object (files through ``replay``, a microphone or standard
input through ``listen``, Kafka through the service, one runner per routed model), so the windows,
scores and events of a stream do not depend on where its audio came from: the scoring pipeline,
input health (``clipping``, ``dead-input``), alerting, event audio and hot reload are all here.
"""
from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from workers.input_health import AudioHealth, AudioHealthSpec, WindowLevel
from workers.model import LoadedModel
from workers.pipeline import ScoringPipeline, StreamSummary
from workers.windowing import WindowScore

from monitor.alerting import AlertContext, HysteresisSpec, StreamAlerts
from monitor.runtime.event_audio import EventAudioStore
from monitor.runtime.input_gate import GatedAlerts, training_level_dbfs
from monitor.runtime.model_watch import ModelWatcher
from monitor.sinks.base import Sink
from monitor.sources.base import AudioChunk, float_from_pcm16


@dataclass
class StreamResult:
    summary: StreamSummary
    windows: list[WindowScore] = field(default_factory=list)
    events: list[dict[str, Any]] = field(default_factory=list)
    #: Summaries under earlier models when the model was hot-reloaded mid-stream.
    before_reload: list[StreamSummary] = field(default_factory=list)


class StreamRunner:
    """Feeds chunks to a ``ScoringPipeline``, alerting on every completed window.

    ``health`` switches the input checks on (``None``: off, as for labelled clips in evaluation).
    """

    def __init__(self, model: LoadedModel, sink: Sink | None = None, *,
                 hysteresis: HysteresisSpec = HysteresisSpec(), keep_windows: bool = False,
                 on_window: Callable[[WindowScore], None] | None = None,
                 health: AudioHealthSpec | None = None,
                 event_audio: EventAudioStore | None = None,
                 watcher: ModelWatcher | None = None) -> None:
        if model.threshold is None:
            raise ValueError("the model has no threshold; alerting needs one")
        self.model, self.sink, self.hysteresis = model, sink, hysteresis
        self.pipeline = ScoringPipeline(model, record_vectors=keep_windows)
        self.keep_windows = keep_windows
        self.on_window = on_window
        self.alerts: dict[str, StreamAlerts] = {}
        self.results: dict[str, StreamResult] = {}
        self.finished: list[StreamResult] = []
        self.feature_names = model.meta.get("feature_names")
        #: Optional: keeps the audio of each event (labels need it); see monitor/runtime/event_audio.py.
        self.event_audio = event_audio
        #: Optional: hot reload of a new ``latest`` model version; see ``swap_model``.
        self.watcher = watcher
        self.health_spec = health
        #: The training level a ``dead-input`` is judged against (None: absolute bounds only).
        self.reference_dbfs = training_level_dbfs(model)
        self._raw: dict[str, _RawTail] = {}
        self.reloads = 0
        #: streams taken over from a checkpoint: (restore point, next window index) until their
        #: first chunk, then the index below which their windows were emitted before
        self._resume: dict[str, tuple[int, int | None]] = {}
        self._skip_below: dict[str, int] = {}

    def _new_alerts(self, stream: str, sample_rate: int, *, machine: str | None = None,
                    time_origin_s: float = 0.0, id_base: int = 0):
        ctx = AlertContext(stream=stream, scorer=self.model.name, model_version=self.model.version,
                           sample_rate=sample_rate, machine=machine, time_origin_s=time_origin_s,
                           feature_names=self.feature_names, id_base=id_base)
        alerts = StreamAlerts(ctx, self.model.threshold, self.hysteresis)
        if self.health_spec is not None:
            length, hop = self.model.window.samples(sample_rate)
            alerts = GatedAlerts(alerts, AudioHealth(length=length, hop=hop, spec=self.health_spec,
                                                     reference_dbfs=self.reference_dbfs,
                                                     min_silence=self.model.frontend.frame_hop))
        self.alerts[stream] = alerts
        self.results[stream] = StreamResult(StreamSummary(stream))
        return alerts

    def push(self, chunk: AudioChunk, *, warmup: bool = False) -> None:
        """Queue a chunk without scoring (call ``flush`` to score all queued chunks together).

        ``warmup=True`` on a stream's first chunk: the stream is picked up mid-way (after a
        restart), so its events are withheld until the alert state no longer depends on the
        audio before this chunk (see ``StreamAlerts.armed``). A stream taken over from a
        checkpoint (``restore_stream``) skips the samples before its restore point.
        """
        if self._resume:
            resume = self._resume.get(chunk.stream)
            if resume is not None:
                cut = resume[0] - chunk.start_sample
                if cut >= len(chunk.samples):
                    return  # scored before the checkpoint
                del self._resume[chunk.stream]
                if resume[1] is not None:
                    self._skip_below[chunk.stream] = resume[1]
                if cut > 0:
                    chunk = chunk.after(cut)
        if chunk.stream not in self.alerts:
            self._new_alerts(chunk.stream, chunk.sample_rate, machine=chunk.machine,
                             time_origin_s=chunk.time_origin_s, id_base=chunk.id_base).armed = not warmup
        if self.health_spec is not None:
            self.alerts[chunk.stream].health.push(chunk.samples, start_sample=chunk.start_sample)
        self.pipeline.push(chunk.stream, chunk.samples, start_sample=chunk.start_sample)
        if self.event_audio is not None:
            self.event_audio.on_chunk(chunk)
        if self.watcher is not None:
            self._raw.setdefault(chunk.stream, _RawTail(chunk.start_sample)).append(
                chunk.samples if chunk.pcm16 is None else chunk.pcm16)

    def flush(self) -> list[dict[str, Any]]:
        """Score everything queued; returns (and writes to the sink) the events it raised."""
        events: list[dict[str, Any]] = self._maybe_reload()
        for w in self.pipeline.flush():
            if self._skip_below:
                below = self._skip_below.get(w.stream)
                if below is not None:
                    if w.index < below:
                        continue  # emitted before the checkpoint
                    del self._skip_below[w.stream]
            if self.watcher is not None:
                self._raw[w.stream].window_done(w, self.model)
            if self.keep_windows:
                self.results[w.stream].windows.append(w)
            if self.on_window is not None:
                self.on_window(w)
            events.extend(self.alerts[w.stream].update(w))
        return self.emit(events)

    def feed(self, chunk: AudioChunk) -> list[dict[str, Any]]:
        """Push one chunk, score it, and end its stream when it is the last one."""
        self.push(chunk)
        events = self.flush()
        if chunk.end_of_stream:
            events += self.end_stream(chunk.stream)
        return events

    def resume_sample(self, stream: str) -> int | None:
        """The oldest sample a restart must re-read so ``stream``'s future events come out the
        same (None: everything since the stream started here is still needed)."""
        alerts = self.alerts.get(stream)
        if alerts is None or alerts.resume_sample is None:
            return None
        return max(0, alerts.resume_sample - self.model.vector_lookback - self.model.vector_stride)

    def drop_stream(self, stream: str) -> None:
        """Forget a stream without events (its partition moved to another worker)."""
        self.alerts.pop(stream, None)
        self.results.pop(stream, None)
        self._forget_resume(stream)
        self.pipeline.end_stream(stream)

    # -- checkpoints (the service's state topic) ---------------------------------------
    def restore_point(self, stream: str) -> int | None:
        """The oldest sample this runner needs again to go on with ``stream`` from its
        ``stream_state`` (None: the stream is unknown here)."""
        resume = self._resume.get(stream) or self.pipeline.resume_point(stream)
        return None if resume is None else resume[0]

    def stream_state(self, stream: str) -> dict[str, Any] | None:
        """What a process needs to take ``stream`` over from here, as JSON values: the alert
        state after the last scored window and where the next window's audio starts."""
        alerts = self.alerts.get(stream)
        resume = self._resume.get(stream) or self.pipeline.resume_point(stream)
        if alerts is None or resume is None:
            return None
        return {"model_version": self.model.version, "from": resume[0], "window": resume[1],
                "alerts": alerts.state()}

    def restore_stream(self, stream: str, state: dict[str, Any], *, sample_rate: int,
                       machine: str | None = None, time_origin_s: float = 0.0,
                       id_base: int = 0) -> list[dict[str, Any]]:
        """Take ``stream`` over from a ``stream_state`` written by another process: the next
        chunks are used from its restore point on, and the alert state goes on where it was.
        Under another model version the event it had open closes (``closed_by:
        model-reload``, as a hot reload closes it) and alerting starts afresh; input health
        goes on either way. Returns the events this raises."""
        alerts = self._new_alerts(stream, sample_rate, machine=machine, time_origin_s=time_origin_s,
                                  id_base=id_base)
        saved, events = state["alerts"], []
        if state["model_version"] == self.model.version:
            alerts.load(saved)
        else:
            alerts.armed = bool(saved["armed"])
            if isinstance(alerts, GatedAlerts) and "health" in saved:
                alerts.health.load_conditions(saved["health"])
            closing = StreamAlerts.closing_record(saved, "model-reload", sample_rate=sample_rate,
                                                  time_origin_s=time_origin_s)
            if closing is not None:
                events.append(closing)
        self._resume[stream] = (int(state["from"]), state["window"])
        return self.emit(events)

    def _forget_resume(self, stream: str) -> None:
        self._resume.pop(stream, None)
        self._skip_below.pop(stream, None)

    def end_stream(self, stream: str, reason: str = "end-of-stream") -> list[dict[str, Any]]:
        events = self.emit(self.alerts.pop(stream).finish(reason))
        self._forget_resume(stream)
        result = self.results.pop(stream)
        result.summary = self.pipeline.end_stream(stream)
        self._raw.pop(stream, None)
        if self.event_audio is not None:
            self.event_audio.end_stream(stream)
        self.finished.append(result)
        return events

    def restart_stream(self, stream: str, *, reason: str) -> list[dict[str, Any]]:
        """End ``stream`` (its open events close with ``closed_by=reason``); its next chunk
        starts it afresh at that chunk's ``start_sample``."""
        a = self.alerts.get(stream)
        if a is None:
            return []
        if isinstance(a, GatedAlerts):
            a.finish_reason = reason
        events = self.flush()
        return events + self.end_stream(stream)

    def level(self, stream: str) -> WindowLevel | None:
        """The input level of the stream's latest window (None before the first one)."""
        a = self.alerts.get(stream)
        return a.level if isinstance(a, GatedAlerts) else None

    def input_dead(self, stream: str) -> bool:
        """Whether the stream's latest window was kept out of alerting as a dead input."""
        a = self.alerts.get(stream)
        return isinstance(a, GatedAlerts) and a.dead

    def open_events(self) -> int:
        return sum(a.raised for a in self.alerts.values())

    def close(self) -> list[dict[str, Any]]:
        events = self.flush()
        for stream in list(self.alerts):
            events += self.end_stream(stream)
        return events

    def _maybe_reload(self) -> list[dict[str, Any]]:
        if self.watcher is None:
            return []
        new = self.watcher.poll()
        return self.swap_model(new) if new is not None else []

    def swap_model(self, model: LoadedModel) -> list[dict[str, Any]]:
        """Score every window not emitted yet with ``model``; returns the events this closes.

        Each stream's audio since its first unemitted window (kept while a watcher is set) is
        pushed again through a fresh pipeline of the new model, so no window is lost or scored
        twice, and windows already emitted keep their old scores. Open events close with
        ``closed_by: model-reload`` under the old version; alerting restarts under the new
        version and threshold (an ongoing fault re-opens under the new model).
        """
        if model.threshold is None:
            raise ValueError("the new model has no threshold; alerting needs one")
        old = self.pipeline
        self.model, self.feature_names = model, model.meta.get("feature_names")
        self.pipeline = ScoringPipeline(model, record_vectors=self.keep_windows)
        events: list[dict[str, Any]] = []
        for stream, alerts in list(self.alerts.items()):
            gated = isinstance(alerts, GatedAlerts)
            inner = alerts.inner if gated else alerts  # input health goes on across a reload
            events += inner.finish("model-reload")
            c = inner.ctx
            ctx = AlertContext(stream=c.stream, scorer=model.name, model_version=model.version,
                               sample_rate=c.sample_rate, machine=c.machine,
                               time_origin_s=c.time_origin_s, feature_names=self.feature_names,
                               id_base=c.id_base)
            fresh = StreamAlerts(ctx, model.threshold, self.hysteresis)
            fresh.armed = inner.armed
            self.alerts[stream] = GatedAlerts(fresh, alerts.health) if gated else fresh
            self.results[stream].before_reload.append(old.end_stream(stream))
            tail = self._raw.get(stream)
            if tail is not None and tail.chunks:
                start, samples = tail.replay_from(model.vector_stride)
                self.pipeline.push(stream, samples, start_sample=start)
        for stream in set(self._raw) - set(self.alerts):
            del self._raw[stream]
        self.reloads += 1
        return events

    def emit(self, events: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Events raised for this runner's streams, to its event audio, results and sink."""
        for e in events:
            if self.event_audio is not None:
                self.event_audio.on_event(e)
            result = self.results.get(e["stream"])
            if result is not None:
                result.events.append(e)
            if self.sink is not None:
                self.sink.write(e)
        return events


class _RawTail:
    """A stream's samples from its first alerting window not yet emitted (for hot reload).

    Positions follow the pipeline's: the stream's first ``start_sample`` plus samples pushed.
    Chunks are kept as pushed (no copy per chunk; int16 where they arrived so, half the memory
    of their float32 samples) and dropped whole once no unemitted window needs them; they are
    joined only when a reload replays them.
    """

    def __init__(self, start: int) -> None:
        self.start = start  # position of the oldest kept chunk's first sample
        self.chunks: deque[np.ndarray] = deque()
        self.next_window_start = start

    def append(self, samples: np.ndarray) -> None:
        """float32 samples, or int16 PCM (converted back exactly when replayed)."""
        self.chunks.append(samples if samples.dtype == np.int16 else np.asarray(samples, np.float32))

    def window_done(self, w: WindowScore, model: LoadedModel) -> None:
        hop = model.window.samples(model.frontend.sample_rate)[1]
        self.next_window_start = w.start_sample + hop
        keep_from = self.next_window_start - model.vector_stride
        while self.chunks and self.start + len(self.chunks[0]) <= keep_from:
            first = self.chunks.popleft()
            self.start += len(first)

    def replay_from(self, stride: int) -> tuple[int, np.ndarray]:
        """(start sample, samples) to push again: from the vector-grid point at or before the
        next window's start, so the new pipeline's first window is exactly that window."""
        start = max(self.start, (self.next_window_start // stride) * stride)
        parts = [float_from_pcm16(c) if c.dtype == np.int16 else c for c in self.chunks]
        buf = np.concatenate(parts) if parts else np.zeros(0, np.float32)
        return start, buf[start - self.start:]
