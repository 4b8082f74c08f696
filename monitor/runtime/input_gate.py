"""Input health in front of machine alerting, per stream: ``clipping`` and ``dead-input``.

A microphone that clips or has gone dead is a problem of the input, not of the machine: the
operator must hear about it as its own event kind (DESIGN §4.3), and a dead input must not be
scored as a machine anomaly. ``GatedAlerts`` wraps one stream's ``StreamAlerts``: each window is
first judged by ``workers.input_health.AudioHealth``; windows of a dead input are kept out of
machine alerting (reported as ``dead-input`` instead), clipped windows are still alerted on and
also reported. Every source reaches it through ``StreamRunner``.
"""
from __future__ import annotations

import math
from typing import Any

from workers.input_health import AudioHealth, HealthTransition
from workers.model import LoadedModel
from workers.windowing import WindowScore

from monitor.alerting import make_event


def training_level_dbfs(model: LoadedModel) -> float | None:
    """The reference level for ``dead-input``: the training windows' 1st-percentile RMS level."""
    lv = (model.meta.get("input_level") or {}).get("window_rms_dbfs") or {}
    v = lv.get("p1")
    return float(v) if isinstance(v, (int, float)) and math.isfinite(v) else None


class GatedAlerts:
    """One stream's alerting with its input health checked first (attributes pass through)."""

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
        if not self.dead:
            out.extend(self.inner.update(w))
        return out

    @property
    def dead(self) -> bool:
        """Whether the latest window was kept out of alerting as a dead input."""
        return self.level is not None and self.health.is_dead(self.level)[0]

    def state(self) -> dict[str, Any]:
        return {**self.inner.state(), "health": self.health.conditions_state()}

    def load(self, d: dict[str, Any]) -> None:
        self.inner.load(d)
        self.health.load_conditions(d["health"])
        self.__dict__["level"] = self.health.last_level

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
