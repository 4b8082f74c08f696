"""The alerting stage: threshold + hysteresis per (stream, model) -> open/closed events."""
from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from models.threshold import Threshold
from workers.windowing import WindowScore

from monitor.alerting.events import MACHINE, make_event
from monitor.alerting.hysteresis import Hysteresis, HysteresisSpec
from monitor.alerting.state import decode_array, decode_window, encode_array, encode_window

#: How many features an event's explanation names.
TOP_FEATURES = 5


@dataclass
class _Open:
    start: WindowScore
    last_over: WindowScore
    peak: float
    windows: int
    contrib_sum: np.ndarray | None
    opened: dict[str, Any]  # the event's `open` record, as it went out


@dataclass
class AlertContext:
    """Who the events are about: labels copied into every event."""

    stream: str
    scorer: str
    model_version: str
    sample_rate: int
    machine: str | None = None
    time_origin_s: float = 0.0
    feature_names: list[str] | None = None
    id_base: int = 0


@dataclass
class StreamAlerts:
    """Alert state of one stream under one model."""

    ctx: AlertContext
    threshold: Threshold
    spec: HysteresisSpec = field(default_factory=HysteresisSpec)

    def __post_init__(self) -> None:
        self.hyst = Hysteresis(self.spec)
        self.recent: list[WindowScore] = []
        self.open: _Open | None = None
        self.opened_count = 0
        # Restart support (the Kafka service): the state after ``quiet_span`` windows in a row
        # under the threshold does not depend on anything earlier, so a stream picked up
        # mid-way starts disarmed (events withheld) and arms at its first quiet point; the
        # start of the oldest of those windows is where a restart must re-read from.
        self.armed = True
        self.under_streak = 0
        self.quiet_span = max(self.spec.n, self.spec.m)
        self._recent_starts: deque[int] = deque(maxlen=self.quiet_span)
        self.resume_sample: int | None = None

    def update(self, w: WindowScore) -> list[dict[str, Any]]:
        over = self.threshold.classify(w.score)
        self.recent = (self.recent + [w])[-self.spec.n:]
        transition = self.hyst.update(over)
        out = []
        if transition == "open":
            overs = [x for x in self.recent if self.threshold.classify(x.score)]
            self.open = _Open(start=overs[0], last_over=overs[-1], peak=max(x.score for x in overs),
                              windows=len(overs), contrib_sum=_sum_contrib(overs), opened={})
            out += self._raise_if_confirmed()
        elif self.open is not None:
            if over:
                o = self.open
                o.last_over, o.peak, o.windows = w, max(o.peak, w.score), o.windows + 1
                if w.contributions is not None and o.contrib_sum is not None:
                    o.contrib_sum = o.contrib_sum + w.contributions
                out += self._raise_if_confirmed()
            if transition == "close":
                if self.open.opened:  # an excursion that never reached the confirmation level is dropped
                    out.append(self._event("closed", self.open))
                self.open = None
        self.under_streak = 0 if over else self.under_streak + 1
        self._recent_starts.append(w.start_sample)
        quiet = self.open is None and self.under_streak >= self.quiet_span
        if not self.armed:
            out = []
            self.armed = quiet
        if quiet:
            self.resume_sample = self._recent_starts[0]
        return out

    @property
    def raised(self) -> bool:
        """Whether an event is open and its ``open`` record went out (not one still below
        the threshold's confirmation level)."""
        return self.open is not None and bool(self.open.opened)

    def _raise_if_confirmed(self) -> list[dict[str, Any]]:
        """The ``open`` record, once the open excursion's peak reaches the confirmation level
        (``Threshold.confirm_level``); it starts at the excursion's first window over."""
        o = self.open
        if o is None or o.opened or o.peak < self.threshold.confirm_level:
            return []
        self.opened_count += 1
        o.opened = self._event("open", o)
        return [o.opened]

    def finish(self, reason: str = "end-of-stream") -> list[dict[str, Any]]:
        """Close an event still open when the stream ends (one never raised goes silently)."""
        if not self.raised:
            self.open = None
            return []
        ev = self.closing_event(reason)
        self.open = None
        return [ev]

    def closing_event(self, reason: str) -> dict[str, Any]:
        """The record that would close the open event now, ``closed_by`` ``reason``."""
        return self._event("closed", self.open, closed_by=reason)

    @staticmethod
    def closing_record(saved: dict[str, Any], reason: str, *, sample_rate: int,
                       time_origin_s: float = 0.0) -> dict[str, Any] | None:
        """The record closing the event open in a saved ``state`` whose model cannot take it
        over: its ``open`` record with the end, peak and window count it had reached (severity
        and explanation as at the open: the model that would recompute them is gone)."""
        o = saved.get("open")
        if not o or not o.get("opened"):
            return None
        end = int(o["last_over"]["e"])
        return dict(o["opened"], status="closed", closed_by=reason, end_sample=end,
                    end=round(time_origin_s + end / sample_rate, 6),
                    peak_score=round(float(o["peak"]), 6), windows=int(o["windows"]))

    def state(self) -> dict[str, Any]:
        """Everything ``update`` reads, as JSON values (the service's state topic): restored
        with ``load``, the next windows raise the events an uninterrupted stream would."""
        o = self.open
        # A recent window's explanation terms count only if it is over the threshold and can
        # still be among the last n windows when the next event opens: with one open, that
        # needs m under-threshold windows first, so only while n > m.
        keep = o is None or self.spec.n > self.spec.m
        return {
            "model_version": self.ctx.model_version,
            "hyst": self.hyst.state(),
            "recent": [encode_window(w, contributions=keep and self.threshold.classify(w.score))
                       for w in self.recent],
            "open": None if o is None else {
                "start": encode_window(o.start, contributions=False),
                "last_over": encode_window(o.last_over, contributions=False),
                "peak": o.peak, "windows": o.windows, "contrib_sum": encode_array(o.contrib_sum),
                "opened": o.opened},
            "opened_count": self.opened_count, "armed": self.armed, "under_streak": self.under_streak,
            "recent_starts": list(self._recent_starts), "resume_sample": self.resume_sample,
        }

    def load(self, d: dict[str, Any]) -> None:
        """Take the state ``state`` wrote (of the same model version)."""
        stream = self.ctx.stream
        self.hyst.load(d["hyst"])
        self.recent = [decode_window(w, stream) for w in d["recent"]]
        o = d["open"]
        self.open = None if o is None else _Open(
            start=decode_window(o["start"], stream), last_over=decode_window(o["last_over"], stream),
            peak=float(o["peak"]), windows=int(o["windows"]), contrib_sum=decode_array(o["contrib_sum"]), opened=o.get("opened") or {})
        self.opened_count, self.armed = int(d["opened_count"]), bool(d["armed"])
        self.under_streak = int(d["under_streak"])
        self._recent_starts = deque((int(x) for x in d["recent_starts"]), maxlen=self.quiet_span)
        self.resume_sample = d["resume_sample"]

    def _event(self, status: str, o: _Open, **extra: Any) -> dict[str, Any]:
        c = self.ctx
        return make_event(
            status=status, kind=MACHINE, stream=c.stream, machine=c.machine, scorer=c.scorer,
            model_version=c.model_version, start_sample=o.start.start_sample,
            end_sample=o.last_over.end_sample, sample_rate=c.sample_rate,
            time_origin_s=c.time_origin_s, id_base=c.id_base, peak_score=round(o.peak, 6),
            threshold=round(self.threshold.value, 6),
            severity=round(self.threshold.severity(o.peak), 3), windows=o.windows,
            explanation=_explain(o.contrib_sum, c.feature_names), **extra)


def _sum_contrib(ws: list[WindowScore]) -> np.ndarray | None:
    parts = [w.contributions for w in ws if w.contributions is not None]
    return np.sum(parts, axis=0) if parts else None


def _explain(contrib: np.ndarray | None, names: list[str] | None) -> dict[str, Any] | None:
    if contrib is None:
        return None
    total = float(contrib.sum()) or 1.0
    top = np.argsort(contrib)[::-1][:TOP_FEATURES]
    return {"top_features": [
        {"index": int(i), "name": names[i] if names else f"f{i}", "share": round(float(contrib[i]) / total, 4)}
        for i in top]}
