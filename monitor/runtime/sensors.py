"""Sensor readings in, events out: grid, health checks, and the same ``StreamRunner`` as audio.

Per stream, readings go onto the model's fixed step (``SensorGrid``); the grid rows are
scored through ``StreamRunner`` (machine events) and checked by ``SensorHealth`` (input-health
events); with ``event_rows`` the rows behind each machine event are kept (``sensor_events.py``).
A gap longer than the model's ``max_gap_s`` ends the stream's windows there (an open machine
event closes with ``closed_by: gap``), raises a ``gap`` event, and scoring restarts after the
gap once a full window of new readings has arrived. Replay of a CSV and the Kafka service both
drive this object, so their events (and their events' stored rows) are the same.

Restarts (the Kafka service's delivery rule): rows sit on the epoch lattice and event ids hash
lattice indices, so a process that picks a stream up mid-way (``warmup=True``) re-derives a
clean run's ids; ``resume_sample`` is the oldest row such a restart must re-read, for the
machine alerts and the health checks alike.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from workers.model import LoadedModel
from workers.sensor_frontend import GridGap, SensorFrontEnd, SensorGrid

from monitor.alerting import HysteresisSpec
from monitor.errors import DataError
from monitor.runtime.runner import StreamResult, StreamRunner
from monitor.runtime.sensor_events import SensorEventSpec, SensorEventStore
from monitor.runtime.sensor_health import HealthContext, SensorHealth, SensorHealthSpec
from monitor.sinks.base import Sink
from monitor.sources.base import AudioChunk


@dataclass
class _SensorStream:
    grid: SensorGrid
    health: SensorHealth | None = None
    machine: str | None = None
    health_events: list[dict[str, Any]] = field(default_factory=list)
    scored: bool = False  # rows went to the runner (a restart after a gap is no warm-up)


class SensorRunner:
    """Feeds sensor readings of many streams to one sensor model."""

    def __init__(self, model: LoadedModel, sink: Sink | None = None, *,
                 hysteresis: HysteresisSpec = HysteresisSpec(), keep_windows: bool = False,
                 health: SensorHealthSpec | None = SensorHealthSpec(),
                 event_rows: SensorEventSpec | None = None) -> None:
        if not isinstance(model.frontend, SensorFrontEnd):
            raise DataError(f"model {model.version} is not a sensor model "
                            f"(features kind {model.meta.get('features', {}).get('kind')!r})")
        self.model, self.sink = model, sink
        self.spec = model.frontend.spec
        #: Optional: keeps the grid rows of each machine event (``sensor_events.py``); the
        #: runner drives it as it drives an event-audio store (rows, events, stream ends).
        self.event_rows = None if event_rows is None else SensorEventStore(
            event_rows, channels=self.spec.channels, step_s=self.spec.step_s)
        self.runner = StreamRunner(model, sink, hysteresis=hysteresis, keep_windows=keep_windows,
                                   event_audio=self.event_rows)
        self.health_spec = health
        self.streams: dict[str, _SensorStream] = {}
        self.health_events: list[dict[str, Any]] = []

    @property
    def finished(self) -> list[StreamResult]:
        return self.runner.finished

    def channel_matrix(self, values: list[dict[str, float]]) -> np.ndarray:
        """Readings as ``{channel: value}`` dicts -> ``[n, C]`` in the model's channel order."""
        ch = self.spec.channels
        return np.array([[v.get(c, np.nan) for c in ch] for v in values], dtype=np.float64)

    def feed(self, stream: str, ts_s: np.ndarray, values: np.ndarray, *, end_of_stream: bool = False,
             machine: str | None = None, warmup: bool = False, score: bool = True) -> list[dict[str, Any]]:
        """Readings of one stream (time order; ``[n, C]`` in the model's channel order).

        ``warmup=True`` when the stream is picked up mid-way (after a restart): its machine
        events wait for the alert state's first quiet point (``StreamRunner.push``).
        ``score=False`` only queues the grid rows: the caller scores every stream's queued rows
        in one call (``flush``), as the service does for audio (a gap or the stream's end still
        scores what came before it at once)."""
        st = self.streams.get(stream)
        if st is None:
            grid = SensorGrid(step_s=self.spec.step_s, n_channels=len(self.spec.channels),
                              max_gap_s=self.spec.max_gap_s)
            st = self.streams[stream] = _SensorStream(grid, machine=machine)
        events: list[dict[str, Any]] = []
        for piece in st.grid.push(np.asarray(ts_s, dtype=np.float64), values, final=end_of_stream):
            if st.health is None and self.health_spec is not None:
                st.health = SensorHealth(self.spec, HealthContext(
                    stream=stream, scorer=self.model.name, model_version=self.model.version,
                    step_s=self.spec.step_s, time_origin_s=st.grid.origin_s, machine=st.machine,
                    id_base=st.grid.lattice_index),
                    self.health_spec)
            if isinstance(piece, GridGap):
                events += self.runner.flush()
                if stream in self.runner.alerts:
                    events += self._close_machine_event(stream)
                if st.health is not None:
                    events += self._emit(st.health.gap(from_s=piece.from_s, to_s=piece.to_s,
                                                       last_index=piece.last_index, resume=piece.resume))
                continue
            self.runner.push(AudioChunk(stream, piece.values, 1.0 / self.spec.step_s, piece.start,
                                        machine=st.machine, time_origin_s=st.grid.origin_s,
                                        id_base=st.grid.lattice_index),
                             warmup=warmup and not st.scored)
            st.scored = True
            if st.health is not None:
                events += self._emit(st.health.update(piece.start, piece.values))
        if score or end_of_stream:
            events += self.runner.flush()
        if end_of_stream:
            events += self.end_stream(stream)
        return events

    def flush(self) -> list[dict[str, Any]]:
        """Score the rows every stream has queued (``feed(score=False)``) in one call."""
        return self.runner.flush()

    def pending_rows(self) -> int:
        return self.runner.pipeline.pending_frames()

    def resume_sample(self, stream: str) -> int | None:
        """The oldest grid row a restart must re-read (None: all since the stream began here)."""
        points = [self.runner.resume_sample(stream)]
        st = self.streams.get(stream)
        if st is not None and st.health is not None:
            points.append(st.health.resume_index())
        return None if None in points else min(points)

    def end_stream(self, stream: str) -> list[dict[str, Any]]:
        events: list[dict[str, Any]] = []
        st = self.streams.pop(stream, None)
        if stream in self.runner.alerts:
            events += self.runner.flush()
            events += self.runner.end_stream(stream)
        if st is not None and st.health is not None:
            events += self._emit(st.health.finish())
        return events

    def close(self) -> list[dict[str, Any]]:
        events = self.runner.flush()
        for stream in list(self.streams):
            events += self.end_stream(stream)
        return events

    def _close_machine_event(self, stream: str) -> list[dict[str, Any]]:
        alerts = self.runner.alerts[stream]
        ev = self.runner.emit(alerts.finish(reason="gap"))
        # the stream's windows end here; scoring restarts after the gap on the same grid
        self.runner.end_stream(stream)
        return ev

    def _emit(self, events: list[dict[str, Any]]) -> list[dict[str, Any]]:
        for e in events:
            self.health_events.append(e)
            if self.sink is not None:
                self.sink.write(e)
        return events
