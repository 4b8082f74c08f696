"""Which models score a stream: the ``models[].streams`` globs, resolved once per stream.

Each route's model is loaded once (two routes naming the same model and threshold share one
runner); audio models get a ``StreamRunner``, sensor models a ``SensorRunner``, each with its
bounded event store when ``sinks.event_audio`` is set (an event's audio, or its sensor rows).
The per-stream lookups are cached, and the cache entry of a stream is dropped when the stream
ends or goes quiet (``forget``), so the cache is bounded by the live streams.
"""
from __future__ import annotations

import fnmatch
import logging
from dataclasses import dataclass
from functools import partial
from typing import Any

from workers.conditioned import bind_condition
from workers.model import LoadedModel, load_model

from monitor.config import Config
from monitor.errors import ConfigError, MonitorError
from monitor.runtime.event_audio import EventAudioSpec, EventAudioStore
from monitor.runtime.model_watch import ModelWatcher
from monitor.runtime.runner import StreamRunner

log = logging.getLogger("monitor.service.worker")


@dataclass
class _Route:
    pattern: str
    runner: StreamRunner


class Router:
    """Stream id -> the runners (one per model) whose glob matches it; cached per stream.

    Audio models get a ``StreamRunner`` (audio topic); sensor models (``features.kind``
    ``sensor``) a ``SensorRunner`` (sensor topic). A glob may route a stream to both kinds.
    """

    def __init__(self, cfg: Config, *, on_window=None) -> None:
        self.routes: list[_Route] = []
        self.runners: list[StreamRunner] = []
        self.sensor_routes: list[tuple[str, Any]] = []
        self.sensor_runners: list[Any] = []
        hyst, health = cfg.alerting.hysteresis(), cfg.alerting.health()
        loaded: dict[tuple[str, float | None, str | None], StreamRunner] = {}
        for i, r in enumerate(cfg.models):
            key = (r.model, r.threshold, r.condition)
            if key not in loaded:
                try:
                    model = bind_condition(load_model(r.model, device=cfg.service.device,
                                                      threshold_override=r.threshold), r.condition)
                except MonitorError as exc:
                    raise ConfigError(f"models[{i}].model: {exc}") from None
                if model.meta.get("features", {}).get("kind") == "sensor":
                    from monitor.runtime.sensors import SensorRunner  # noqa: PLC0415

                    sensor = SensorRunner(model, None, hysteresis=hyst,
                                          event_rows=_sensor_event_rows(cfg, model))
                    sensor.runner.on_window = partial(on_window, model) if on_window else None
                    loaded[key] = sensor
                    self.sensor_runners.append(sensor)
                    self.sensor_routes.append((r.streams, sensor))
                    continue
                runner = StreamRunner(model, None, hysteresis=hyst, health=health,
                                      watcher=_watcher(r.model, model, cfg, r.threshold, r.condition),
                                      event_audio=_event_audio(cfg))
                if on_window is not None:  # the runner's model, which a hot reload replaces
                    runner.on_window = partial(_with_model, on_window, runner)
                loaded[key] = runner
                self.runners.append(runner)
            if isinstance(loaded[key], StreamRunner):
                self.routes.append(_Route(r.streams, loaded[key]))
            elif (r.streams, loaded[key]) not in self.sensor_routes:
                self.sensor_routes.append((r.streams, loaded[key]))
        self._cache: dict[str, list[StreamRunner]] = {}
        self._sensor_cache: dict[str, list[Any]] = {}

    def sensors_for(self, stream: str) -> list[Any]:
        hit = self._sensor_cache.get(stream)
        if hit is None:
            hit = []
            for pattern, runner in self.sensor_routes:
                if fnmatch.fnmatchcase(stream, pattern) and runner not in hit:
                    hit.append(runner)
            self._sensor_cache[stream] = hit
        return hit

    def for_stream(self, stream: str) -> list[StreamRunner]:
        hit = self._cache.get(stream)
        if hit is None:
            hit = []
            for r in self.routes:
                if fnmatch.fnmatchcase(stream, r.pattern) and r.runner not in hit:
                    hit.append(r.runner)
            self._cache[stream] = hit
        return hit

    def forget(self, stream: str) -> None:
        """Drop the cached lookups of ``stream`` (it ended or went quiet)."""
        self._cache.pop(stream, None)
        self._sensor_cache.pop(stream, None)


def _with_model(on_window, runner: StreamRunner, w) -> None:
    on_window(runner.model, w)


def _event_audio(cfg: Config) -> EventAudioStore | None:
    """The bounded store of event audio (``sinks.event_audio``), one per audio model."""
    s = cfg.sinks
    if not s.event_audio:
        return None
    return EventAudioStore(EventAudioSpec(s.event_audio, max_bytes=s.event_audio_max_mb << 20,
                                          retain_s=s.event_audio_retain_s,
                                          max_event_s=max(60.0, s.event_audio_retain_s)))


def _sensor_event_rows(cfg: Config, model: LoadedModel):
    """The bounded store of sensor events' rows: the same folder (``sinks.event_audio``) and
    bounds as the event audio, one per sensor model; ``monitor replay`` of a CSV builds it the
    same way."""
    from monitor.runtime.sensor_events import SensorEventSpec  # noqa: PLC0415

    return SensorEventSpec.from_sinks(cfg.sinks, model, hysteresis=cfg.alerting.hysteresis())


def _watcher(path: str, model: LoadedModel, cfg: Config, threshold: float | None,
             condition: str | None = None):
    """A ``ModelWatcher`` on the route's model root (hot reload), or None: switched off, or the
    folder has no ``latest`` to follow (a fixed version folder outside a model root)."""
    if cfg.service.model_reload_s <= 0:
        return None
    try:
        w = ModelWatcher(path, current_version=model.version, every_s=cfg.service.model_reload_s,
                         device=cfg.service.device, threshold_override=threshold, condition=condition)
    except MonitorError as exc:
        log.info("no hot reload for %s: %s", path, exc)
        return None
    log.info("watching %s for new model versions every %.0f s", w.root, cfg.service.model_reload_s,
             extra={"model_root": str(w.root), "model_version": model.version})
    return w
