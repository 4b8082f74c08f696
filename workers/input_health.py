"""Input health of an audio stream: clipping and a dead input, judged per alerting window.

A microphone that clips or has gone dead is a problem of the input, not of the machine: the
operator must hear about it as such, and a dead input must not be scored as a machine anomaly
(silence is far from any machine's normal sound, so a scorer would flag it). The checks run on
the raw samples of each alerting window, on the same absolute sample grid as the scores:

- ``clipping``: at least ``clip_fraction`` of the window's samples sit at full scale.
- ``dead-input``: digital silence (peak below ``silence_peak``) or a level ``dead_margin_db``
  or more below the training level (the 1st percentile of the training windows' RMS level,
  stored in the model's ``meta.json`` under ``input_level``).

A condition opens after ``open_after`` windows in a row and closes after ``close_after``
windows in a row without it, so one odd window does not flap.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

CLIPPING = "clipping"
DEAD_INPUT = "dead-input"


@dataclass(frozen=True)
class AudioHealthSpec:
    clip_level: float = 0.999  # |x| at or above this is full scale (s16: 32767/32768 = 0.99997)
    clip_fraction: float = 1e-3
    silence_peak: float = 2.0 / 32768  # peak below 2 LSB of 16-bit audio = digital silence
    dead_margin_db: float = 30.0
    open_after: int = 2
    close_after: int = 2

    def __post_init__(self) -> None:
        if not (0 < self.clip_level <= 1 and 0 < self.clip_fraction <= 1):
            raise ValueError(f"clip_level and clip_fraction must lie in (0, 1], got {self}")
        if self.open_after < 1 or self.close_after < 1:
            raise ValueError(f"open_after and close_after must be >= 1, got {self}")


@dataclass
class WindowLevel:
    """What the health checks saw in one alerting window."""

    start_sample: int
    end_sample: int
    samples: int
    rms_dbfs: float
    peak: float
    clipped: int
    silent: int = 0  # samples in cells of digital silence

    @property
    def clipped_fraction(self) -> float:
        return self.clipped / self.samples if self.samples else 0.0


@dataclass
class HealthTransition:
    """A health condition opening or closing, on the stream's sample grid."""

    kind: str
    status: str  # "open" | "closed"
    start_sample: int
    end_sample: int
    detail: str
    fields: dict[str, Any] = field(default_factory=dict)


def rms_dbfs(x: np.ndarray) -> float:
    """RMS level in dB relative to full scale (a full-scale sine reads -3 dBFS); -inf for zeros."""
    ms = float(np.mean(np.square(x, dtype=np.float64))) if len(x) else 0.0
    return 10 * math.log10(ms) if ms > 0 else -math.inf


def level_percentiles(levels: list[float] | np.ndarray) -> dict[str, float]:
    """Summary of training window levels, as stored in ``meta.json`` ``input_level``."""
    lv = np.asarray([v for v in levels if math.isfinite(v)], dtype=np.float64)
    if not len(lv):
        return {}
    p = np.percentile(lv, [1, 5, 50, 99])
    return {"p1": round(float(p[0]), 3), "p5": round(float(p[1]), 3),
            "median": round(float(p[2]), 3), "p99": round(float(p[3]), 3), "windows": int(len(lv))}


class _Condition:
    def __init__(self, kind: str, spec: AudioHealthSpec) -> None:
        self.kind, self.spec = kind, spec
        self.run_on = self.run_off = 0
        self.first: WindowLevel | None = None  # first window of the current run of bad windows
        self.open_from: WindowLevel | None = None
        self.last_bad: WindowLevel | None = None
        self.detail = ""

    def update(self, w: WindowLevel, bad: bool, detail: str) -> list[HealthTransition]:
        out = []
        if bad:
            self.run_off = 0
            self.run_on += 1
            if self.run_on == 1:
                self.first = w
            self.last_bad, self.detail = w, detail or self.detail
            if self.open_from is None and self.run_on >= self.spec.open_after:
                self.open_from = self.first
                out.append(self._t("open", w))
        else:
            self.run_on = 0
            if self.open_from is not None:
                self.run_off += 1
                if self.run_off >= self.spec.close_after:
                    out.append(self._t("closed", self.last_bad))
                    self.open_from = None
        return out

    def finish(self) -> list[HealthTransition]:
        if self.open_from is None:
            return []
        t = self._t("closed", self.last_bad, closed_by="end-of-stream")
        self.open_from = None
        return [t]

    def state(self) -> dict[str, Any]:
        return {"run_on": self.run_on, "run_off": self.run_off, "detail": self.detail,
                **{k: _level_state(getattr(self, k)) for k in ("first", "open_from", "last_bad")}}

    def load(self, d: dict[str, Any]) -> None:
        self.run_on, self.run_off, self.detail = int(d["run_on"]), int(d["run_off"]), str(d["detail"])
        for k in ("first", "open_from", "last_bad"):
            setattr(self, k, _level_from(d[k]))

    def _t(self, status: str, last: WindowLevel, **fields: Any) -> HealthTransition:
        return HealthTransition(self.kind, status, self.open_from.start_sample, last.end_sample,
                                self.detail, fields)


class AudioHealth:
    """Per-stream level bookkeeping on the alerting-window grid, plus the two conditions.

    ``push`` raw samples as they arrive (``start_sample`` = the absolute index of the first);
    ``assess(start, end)`` for each window the scoring pipeline completes, in order. Levels are
    kept per ``cell`` samples (a divisor of the window length and hop), so digital silence as
    short as ``min_silence`` samples inside a window is seen: one silent frame already makes a
    log-mel window look nothing like a machine.
    """

    def __init__(self, *, length: int, hop: int, spec: AudioHealthSpec = AudioHealthSpec(),
                 reference_dbfs: float | None = None, min_silence: int = 512) -> None:
        self.length, self.hop, self.spec = length, hop, spec
        self.cell = math.gcd(math.gcd(length, hop), max(1, min_silence // 4))
        self.min_silence = min_silence
        self.reference_dbfs = reference_dbfs
        self.dead_below = (reference_dbfs - spec.dead_margin_db) if reference_dbfs is not None else None
        self.base = 0  # cell index of the arrays' first element
        # per cell: sum of squares, peak |x|, clipped count, samples seen; views of buffers
        # that grow by doubling (a push per 0.1 s chunk must not copy the arrays)
        self._buf = [np.zeros(64) for _ in range(4)]
        self._set_view(0, 0)
        self._bounds: dict[tuple[int, int], tuple[np.ndarray, np.ndarray]] = {}
        self._pending: list[tuple[int, np.ndarray]] = []
        self.conditions = {k: _Condition(k, spec) for k in (CLIPPING, DEAD_INPUT)}
        self.last_level: WindowLevel | None = None

    def _set_view(self, off: int, length: int) -> None:
        self._off, self._len = off, length
        self.ss, self.peak, self.clip, self.n = (b[off:off + length] for b in self._buf)

    def _grow(self, last_cell: int) -> None:
        need = last_cell + 1 - self.base
        if need <= self._len:
            return
        off, old = self._off, self._len
        if off + need > len(self._buf[0]):
            fresh = [np.zeros(max(2 * need, 64)) for _ in range(4)]
            for f, b in zip(fresh, self._buf):
                f[:old] = b[off:off + old]
            self._buf, off = fresh, 0
        for b in self._buf:
            b[off + old:off + need] = 0.0
        self._set_view(off, need)

    def _segments(self, first: int, n: int) -> tuple[np.ndarray, np.ndarray]:
        """Cell boundaries inside a push of ``n`` samples whose first cell ends after ``first``
        samples, and the samples per cell (chunks come in a few shapes: cached)."""
        key = (first, n)
        seg = self._bounds.get(key)
        if seg is None:
            if len(self._bounds) >= 64:
                self._bounds.clear()
            bounds = np.concatenate([[0], np.arange(first, n, self.cell)]).astype(np.intp)
            seg = self._bounds[key] = (bounds, np.diff(np.append(bounds, n)).astype(np.float64))
        return seg

    def push(self, samples: np.ndarray, *, start_sample: int) -> None:
        """Queue raw samples; they are added to the cells in one go per window (``assess``):
        per 0.1 s chunk the array calls cost more than their arithmetic."""
        if len(samples):
            self._pending.append((start_sample, samples))

    def _absorb(self) -> None:
        pending, self._pending = self._pending, []
        i = 0
        while i < len(pending):  # contiguous pieces joined, then added at once
            start, parts = pending[i][0], [pending[i][1]]
            end = start + len(parts[0])
            i += 1
            while i < len(pending) and pending[i][0] == end:
                parts.append(pending[i][1])
                end += len(pending[i][1])
                i += 1
            self._add(np.concatenate(parts) if len(parts) > 1 else parts[0], start)

    def _add(self, samples: np.ndarray, start_sample: int) -> None:
        x = np.asarray(samples, dtype=np.float64).reshape(-1)
        c0 = start_sample // self.cell
        c_last = (start_sample + len(x) - 1) // self.cell
        if not self._len:
            self.base = c0
            self._set_view(0, 0)
        if c0 < self.base:
            raise ValueError(f"samples from {start_sample} arrive after cells up to "
                             f"{self.base * self.cell} were assessed")
        self._grow(c_last)
        bounds, counts = self._segments((c0 + 1) * self.cell - start_sample, len(x))
        a = np.abs(x)
        sl = slice(c0 - self.base, c_last - self.base + 1)
        self.ss[sl] += np.add.reduceat(x * x, bounds)
        peaks = np.maximum.reduceat(a, bounds)
        np.maximum(self.peak[sl], peaks, out=self.peak[sl])
        if peaks.max() >= self.spec.clip_level:  # rare: count only where a sample reached it
            self.clip[sl] += np.add.reduceat(a >= self.spec.clip_level, bounds, dtype=np.float64)
        self.n[sl] += counts

    def _cells(self, start_sample: int, end_sample: int) -> slice:
        c0, c1 = start_sample // self.cell, -(-end_sample // self.cell)
        return slice(max(0, c0 - self.base), max(0, c1 - self.base))

    def level(self, start_sample: int, end_sample: int) -> WindowLevel:
        if self._pending:
            self._absorb()
        sl = self._cells(start_sample, end_sample)
        n = int(self.n[sl].sum())
        ss = float(self.ss[sl].sum())
        db = 10 * math.log10(ss / n) if n and ss > 0 else -math.inf
        peak = float(self.peak[sl].max()) if n else 0.0
        lv = WindowLevel(start_sample, end_sample, n, db, peak, int(self.clip[sl].sum()))
        seen = self.n[sl] > 0
        lv.silent = int(self.n[sl][seen & (self.peak[sl] < self.spec.silence_peak)].sum())
        return lv

    def assess(self, start_sample: int, end_sample: int) -> tuple[WindowLevel, list[HealthTransition]]:
        """The window's level and the health transitions it causes; forgets older cells."""
        w = self.level(start_sample, end_sample)
        self.last_level = w
        clip_bad = w.samples > 0 and w.clipped_fraction >= self.spec.clip_fraction
        out = self.conditions[CLIPPING].update(
            w, clip_bad, f"{w.clipped_fraction:.2%} of samples at full scale" if clip_bad else "")
        dead, detail = self.is_dead(w)
        out += self.conditions[DEAD_INPUT].update(w, dead, detail)
        drop = (start_sample + self.hop) // self.cell - self.base
        if drop >= self._len:
            self._set_view(0, 0)  # everything seen is assessed; restart lazily
        elif drop > 0:
            self._set_view(self._off + drop, self._len - drop)
            self.base += drop
        return w, out

    def is_dead(self, w: WindowLevel) -> tuple[bool, str]:
        """Digital silence of ``min_silence`` samples or more, or a level far below training."""
        if w.samples == 0:
            return False, ""
        if w.silent >= min(self.min_silence, w.samples):
            what = "digital silence" if w.silent >= w.samples else \
                f"digital silence in {w.silent / w.samples:.0%} of the window"
            return True, what
        if self.dead_below is not None and w.rms_dbfs < self.dead_below:
            return True, (f"level {w.rms_dbfs:.1f} dBFS, {self.reference_dbfs - w.rms_dbfs:.0f} dB "
                          f"below the training level ({self.reference_dbfs:.1f} dBFS)")
        return False, ""

    def finish(self) -> list[HealthTransition]:
        return [t for c in self.conditions.values() for t in c.finish()]

    def conditions_state(self) -> dict[str, Any]:
        """The conditions' runs and the last window's level (the per-cell levels are rebuilt
        from the samples pushed again after a restore, from the next window's start on)."""
        return {"conditions": {k: c.state() for k, c in self.conditions.items()},
                "last_level": _level_state(self.last_level)}

    def load_conditions(self, d: dict[str, Any]) -> None:
        for k, c in d["conditions"].items():
            self.conditions[k].load(c)
        self.last_level = _level_from(d["last_level"])


def _level_state(w: WindowLevel | None) -> list | None:
    if w is None:
        return None
    return [w.start_sample, w.end_sample, w.samples, w.rms_dbfs, w.peak, w.clipped, w.silent]


def _level_from(v: list | None) -> WindowLevel | None:
    if v is None:
        return None
    a, b, n, db, peak, clipped, silent = v
    return WindowLevel(int(a), int(b), int(n), float(db), float(peak), int(clipped), int(silent))
