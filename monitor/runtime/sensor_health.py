"""Sensor input health: checks of the readings themselves, reported as their own event kinds.

A stuck or broken sensor is not a machine anomaly, and the operator must hear about it as
such (DESIGN §4.3). The checks run on the raw grid rows, per channel, against what the
channel did in training (stored in the model's sensor spec):

- ``flat-line``: a channel that varied in training repeats the same value for more than
  ``max(flat_min, flat_factor x its longest training run)`` steps (a stuck sensor).
- ``out-of-range``: a value outside the training range widened by ``range_margin`` x the
  range on each side.
- ``step``: one channel jumps by more than ``step_factor`` x its 99.9th-percentile training
  step while every other channel moves within its normal steps: a change of a single channel
  the machine's coupled dynamics cannot explain (a sensor fault rather than the process).
- ``gap``: no reading for longer than the model's ``max_gap_s`` (reported by the runner).

Conditions open when they hold and close after ``close_after`` rows without them; a step and
a gap are instants (an ``open`` and a ``closed`` event at once, the same ``event_id``).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from workers.sensor_frontend import SensorSpec

from monitor.alerting.events import make_event

FLAT_LINE, OUT_OF_RANGE, STEP, GAP = "flat-line", "out-of-range", "step", "gap"


@dataclass(frozen=True)
class SensorHealthSpec:
    flat_min: int = 30
    flat_factor: float = 2.0
    range_margin: float = 0.5
    step_factor: float = 5.0
    close_after: int = 3


@dataclass
class HealthContext:
    stream: str
    scorer: str
    model_version: str
    step_s: float
    time_origin_s: float
    machine: str | None = None
    id_base: int = 0  # the grid's origin on the epoch lattice (``AudioChunk.id_base``)


class SensorHealth:
    """Health state of one sensor stream (one per stream, fed grid rows in order)."""

    def __init__(self, spec: SensorSpec, ctx: HealthContext, hs: SensorHealthSpec = SensorHealthSpec()) -> None:
        self.spec, self.ctx, self.hs = spec, ctx, hs
        c = len(spec.channels)
        std = np.asarray(spec.std)
        self.varied = std > 1e-9 * np.maximum(1.0, np.abs(np.asarray(spec.mean)))
        runs = np.asarray(spec.flat_run if spec.flat_run else [0] * c, dtype=np.float64)
        self.flat_limit = np.maximum(hs.flat_min, hs.flat_factor * runs)
        if spec.lo is not None and spec.hi is not None:
            lo, hi = np.asarray(spec.lo), np.asarray(spec.hi)
            pad = hs.range_margin * np.maximum(hi - lo, std)
            self.lo, self.hi = lo - pad, hi + pad
        else:
            self.lo = self.hi = None
        self.step_q = (np.maximum(np.asarray(spec.step_q), 1e-9 * np.maximum(std, 1e-12))
                       if spec.step_q is not None else None)
        self.prev: np.ndarray | None = None
        self.prev_index: int | None = None
        self.flat_run = np.zeros(c, dtype=np.int64)
        self.open: dict[tuple[str, int], dict[str, Any]] = {}
        self.quiet: dict[tuple[str, int], int] = {}
        self.counts: dict[str, int] = {}

    def update(self, start: int, rows: np.ndarray) -> list[dict[str, Any]]:
        """Grid rows ``[n, C]`` starting at grid index ``start`` -> health events."""
        out: list[dict[str, Any]] = []
        rows = np.asarray(rows, dtype=np.float64)
        if self.prev_index is not None and start != self.prev_index + 1:
            self.prev = None  # not contiguous (after a gap): no steps or runs across it
        for i, row in enumerate(rows):
            k = start + i
            active: dict[tuple[str, int], float] = {}
            if self.lo is not None:
                for c in np.flatnonzero((row < self.lo) | (row > self.hi)):
                    active[(OUT_OF_RANGE, int(c))] = float(row[c])
            if self.prev is not None:
                d = np.abs(row - self.prev)
                same = d <= 1e-12 * np.maximum(1.0, np.abs(row))
                self.flat_run = np.where(same, self.flat_run + 1, 0)
                for c in np.flatnonzero(self.varied & (self.flat_run >= self.flat_limit)):
                    active[(FLAT_LINE, int(c))] = float(row[c])
                if self.step_q is not None and len(row) > 1:
                    big = d > self.hs.step_factor * self.step_q
                    calm = d <= self.step_q
                    if big.sum() == 1 and calm[~big].all():
                        c = int(np.flatnonzero(big)[0])
                        out += self._instant(STEP, c, k - 1, k + 1, value=float(row[c]),
                                             change=float(row[c] - self.prev[c]))
            out += self._transitions(k, active)
            self.prev, self.prev_index = row, k
        return out

    def resume_index(self) -> int | None:
        """The oldest grid row a restart must re-read to rebuild this state: the start of the
        longest current flat run and of every open condition (None before the first row).
        Steps need only the previous row; those before the restart point were already emitted."""
        if self.prev_index is None:
            return None
        points = [self.prev_index - int(self.flat_run.max(initial=0))]
        points += [int(ev["start_sample"]) for ev in self.open.values()]
        return max(0, min(points))

    def gap(self, *, from_s: float, to_s: float, last_index: int, resume: int) -> list[dict[str, Any]]:
        """No readings between ``from_s`` and ``to_s``: close open conditions, report the gap."""
        out = self.finish(reason="gap")
        self.prev = None
        self.flat_run[:] = 0
        out += self._instant(GAP, None, last_index + 1, resume, missing_s=round(to_s - from_s, 3))
        return out

    def finish(self, reason: str = "end-of-stream") -> list[dict[str, Any]]:
        out = [self._event("closed", kind, c, ev["start_sample"], self._last_end(),
                           closed_by=reason, value=ev.get("value"))
               for (kind, c), ev in sorted(self.open.items())]
        self.open.clear()
        self.quiet.clear()
        return out

    # -- events ----------------------------------------------------------------------------
    def _last_end(self) -> int:
        return (self.prev_index or 0) + 1

    def _transitions(self, k: int, active: dict[tuple[str, int], float]) -> list[dict[str, Any]]:
        out = []
        for key, value in active.items():
            self.quiet.pop(key, None)
            if key not in self.open:
                kind, c = key
                start = k - int(self.flat_run[c]) if kind == FLAT_LINE else k
                ev = self._event("open", kind, c, start, k + 1, value=value)
                self.open[key] = ev
                self.counts[kind] = self.counts.get(kind, 0) + 1
                out.append(ev)
        for key in [key for key in self.open if key not in active]:
            self.quiet[key] = self.quiet.get(key, 0) + 1
            if self.quiet[key] >= self.hs.close_after:
                ev = self.open.pop(key)
                self.quiet.pop(key)
                kind, c = key
                out.append(self._event("closed", kind, c, ev["start_sample"],
                                       k + 1 - self.hs.close_after, value=ev.get("value")))
        return out

    def _instant(self, kind: str, c: int | None, start: int, end: int, **fields: Any) -> list[dict[str, Any]]:
        self.counts[kind] = self.counts.get(kind, 0) + 1
        return [self._event(s, kind, c, start, end, **fields) for s in ("open", "closed")]

    def _event(self, status: str, kind: str, c: int | None, start: int, end: int, **fields: Any) -> dict[str, Any]:
        x = self.ctx
        channel = self.spec.channels[c] if c is not None else None
        ev = make_event(status=status, kind=kind, stream=x.stream, machine=x.machine, scorer=x.scorer,
                        model_version=x.model_version, start_sample=start,
                        end_sample=max(end, start + 1), sample_rate=1.0 / x.step_s,
                        time_origin_s=x.time_origin_s, id_base=x.id_base, channel=channel,
                        id_kind=f"{kind}:{channel}" if channel is not None else None,
                        explanation={"channel": channel} if channel else None,
                        **{k: v for k, v in fields.items() if v is not None})
        return ev
