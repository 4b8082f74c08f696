"""Sensor defaults chosen from the training rows by rules, one rule per scorer.

A user's plant data gets these, not a table of per-benchmark settings, so every value is
computed from what training sees (never from labels):

- window length: the signal's dominant period (the first autocorrelation peak after the
  first zero crossing within 10 % of the highest, if that is above 0.5, searched up to twice
  the cap; ARIMA's ``season="auto"`` uses the same rule inside its window), plus any steps
  the scorer needs around it (``period_extra``), bounded below by ``min_frames`` and above by
  the scorer's anchor window (``frames``: Orion's 100 for TadGAN, telemanom's 250 + 10 for the
  LSTM, ...) and by a fifth of the longest training segment (so at least ~4/5 of its rows
  start a window); no period found = the anchor window, within the same bounds;
- training stride: windows ``ceil(n / train_windows)`` steps apart, so one fit sees at most
  ``train_windows`` windows whatever the series length (bounded cost per epoch);
- epochs are not a rule here: every scorer that trains by epochs stops early on a time-ordered
  validation split (``models/base.py``), with its ``epochs`` as a cap.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch


def dominant_period(series: torch.Tensor | np.ndarray, limit: int, *, min_peak: float = 0.5) -> int:
    """Lag (steps) of the first autocorrelation peak after the first zero crossing that is within
    10 % of the highest there (the fundamental, not one of its multiples), all channels pooled,
    searched up to ``min(limit, len // 3)``; 0 when the series never decorrelates in that range
    or the highest peak is not above ``min_peak``. ``series``: ``[N, F]``."""
    seg = torch.as_tensor(series, dtype=torch.float64)
    if seg.ndim == 1:
        seg = seg[:, None]
    limit = min(int(limit), len(seg) // 3)
    if limit < 2:
        return 0
    x = (seg - seg.mean(0)) / seg.std(0).clamp_min(1e-9)
    acf = torch.stack([(x[k:] * x[:-k]).mean() for k in range(1, limit + 1)])
    neg = torch.nonzero(acf < 0)
    if not len(neg):
        return 0
    tail = acf[int(neg[0]):]
    top = float(tail.max())
    if top <= min_peak:
        return 0
    # the fundamental, not a multiple: the first local peak within 10 % of the highest
    left = torch.cat([tail[:1], tail[:-1]])
    right = torch.cat([tail[1:], tail[-1:]])
    peaks = torch.nonzero((tail >= left) & (tail >= right) & (tail >= 0.9 * top))
    return int(neg[0]) + int(peaks[0]) + 1


@dataclass(frozen=True)
class SensorRule:
    """One scorer's sensor defaults (see the module docstring)."""

    frames: int
    min_frames: int
    train_windows: int | None  # None: every window (ARIMA rebuilds the series from hop-1 windows)
    period_extra: int = 0
    no_period: int | None = None  # window when no period is found (None: ``frames``)
    multiple: int = 1  # window a multiple of this (conv-ae halves time twice)
    fit_fraction: int = 5

    def window(self, segments: list[np.ndarray]) -> tuple[int, int]:
        """(window length, dominant period found or 0) for these training segments."""
        longest = max(segments, key=len)
        period = dominant_period(longest, 2 * self.frames)  # a longer period than the cap is still one
        want = period + self.period_extra if period else (self.no_period or self.frames)
        frames = max(self.min_frames, min(want, self.frames, len(longest) // self.fit_fraction))
        return max(self.multiple, frames - frames % self.multiple), period

    def stride(self, n_windows: int) -> int:
        """Training stride so one fit sees at most ``train_windows`` windows."""
        return 1 if self.train_windows is None else max(1, math.ceil(n_windows / self.train_windows))


def sensor_settings(rule: SensorRule, segments: list[np.ndarray], *, frames: int | None = None,
                    train_stride: int | None = None) -> dict:
    """The rule's window and stride for these training segments; a value given by hand wins.
    Returns ``{"frames", "train_stride", "period", "set_by"}`` (what came from the rule)."""
    period = 0
    set_by = {}
    if frames is None:
        frames, period = rule.window(segments)
        set_by["frames"] = "rule"
    if train_stride is None:
        n = sum(max(0, len(s) - frames + 1) for s in segments)
        train_stride = rule.stride(n)
        set_by["train_stride"] = "rule"
    return {"frames": int(frames), "train_stride": int(train_stride), "period": int(period), "set_by": set_by}
