"""Chunks in, events out: the scoring pipeline plus alerting for one model.

Replay, the microphone and (per model) the Kafka service drive this same object, so the
windows, scores and events of a stream do not depend on where its audio came from.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from workers.model import LoadedModel
from workers.pipeline import ScoringPipeline, StreamSummary
from workers.windowing import WindowScore

from .alerting import AlertContext, HysteresisSpec, StreamAlerts
from .sinks.base import Sink
from .sources.base import AudioChunk


@dataclass
class StreamResult:
    summary: StreamSummary
    windows: list[WindowScore] = field(default_factory=list)
    events: list[dict[str, Any]] = field(default_factory=list)


class StreamRunner:
    """Feeds chunks to a ``ScoringPipeline``, alerting on every completed window."""

    def __init__(self, model: LoadedModel, sink: Sink | None = None, *,
                 hysteresis: HysteresisSpec = HysteresisSpec(), keep_windows: bool = False,
                 on_window: Callable[[WindowScore], None] | None = None) -> None:
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

    def push(self, chunk: AudioChunk) -> None:
        """Queue a chunk without scoring (call ``flush`` to score all queued chunks together)."""
        if chunk.stream not in self.alerts:
            ctx = AlertContext(stream=chunk.stream, scorer=self.model.name,
                               model_version=self.model.version, sample_rate=chunk.sample_rate,
                               machine=chunk.machine, time_origin_s=chunk.time_origin_s,
                               feature_names=self.feature_names)
            self.alerts[chunk.stream] = StreamAlerts(ctx, self.model.threshold, self.hysteresis)
            self.results[chunk.stream] = StreamResult(StreamSummary(chunk.stream))
        self.pipeline.push(chunk.stream, chunk.samples, start_sample=chunk.start_sample)

    def flush(self) -> list[dict[str, Any]]:
        """Score everything queued; returns (and writes to the sink) the events it raised."""
        events: list[dict[str, Any]] = []
        for w in self.pipeline.flush():
            if self.keep_windows:
                self.results[w.stream].windows.append(w)
            if self.on_window is not None:
                self.on_window(w)
            events.extend(self.alerts[w.stream].update(w))
        return self._emit(events)

    def feed(self, chunk: AudioChunk) -> list[dict[str, Any]]:
        """Push one chunk, score it, and end its stream when it is the last one."""
        self.push(chunk)
        events = self.flush()
        if chunk.end_of_stream:
            events += self.end_stream(chunk.stream)
        return events

    def end_stream(self, stream: str) -> list[dict[str, Any]]:
        events = self._emit(self.alerts.pop(stream).finish())
        result = self.results.pop(stream)
        result.summary = self.pipeline.end_stream(stream)
        self.finished.append(result)
        return events

    def close(self) -> list[dict[str, Any]]:
        events = self.flush()
        for stream in list(self.alerts):
            events += self.end_stream(stream)
        return events

    def _emit(self, events: list[dict[str, Any]]) -> list[dict[str, Any]]:
        for e in events:
            result = self.results.get(e["stream"])
            if result is not None:
                result.events.append(e)
            if self.sink is not None:
                self.sink.write(e)
        return events
