"""Training and scoring wrapper for the statsmodels ARIMA forecaster (registry name ``arima``).

``fit`` recovers the contiguous training series from the (hop-1) training windows, and per
channel fits ``statsmodels.tsa.arima.model.ARIMA`` for every (p, q) of a small grid
(``p <= max_p``, ``q <= max_q``, ``d`` fixed; the series demeaned first, so the mean is the
training mean), keeping the lowest AIC (``select="aic"``), or exactly ``(max_p, d, max_q)``
(``select="fixed"``). ``method`` is statsmodels' estimator: ``hannan_rissanen`` (default,
~5x faster) or ``statespace`` (exact MLE). The fitted parameters become buffers of
``ArmaErrors``; nothing is refitted while scoring.

Why not a stateful ``results.append/extend`` per reading: a scorer's ``score`` must be pure
and batched == one by one (a window's score may not depend on which windows came before),
so each window re-runs the same filter with the fixed parameters over its own steps. That
costs O(T) per window instead of O(1) per reading, and the first ``P`` steps of each window
only prime the recursion; in return replay, the service and evaluation agree exactly.

``season`` (``"auto"`` by default = the signal's dominant period, ``models/sensor_rules.py``,
or 0 when it has none or the window cannot hold it; else a fixed lag, 0 = none) differences
the series at that lag first (seasonal ARIMA with D = 1): the forecast then says "like one
season ago, plus the ARMA dynamics of the deviation".

Score: |one-step error| divided by the channel's mean absolute training error, EWMA-smoothed
over the window (``span``), read at the last step, channels combined like the LSTM's; or, with
``combine="mewma"``, the multivariate EWMA chart on the signed errors (``models/series.py``).
"""
from __future__ import annotations

import time
import warnings

import numpy as np
import torch
from torch import nn

from ..base import FitReport, Progress, Scorer, check_training_windows
from ..errors import ScorerError
from ..sensor_rules import SensorRule, dominant_period
from ..series import COMBINE, contiguous_segments, mewma_precision, window_score
from .net import ArmaErrors


class ArimaScorer(Scorer):
    name = "arima"
    added_buffers = ("precision",)  # combine="mewma", 2026-12-02; unused by the others
    defaults = {"max_p": 3, "max_q": 1, "d": 0, "select": "aic", "span": 10, "combine": "mean",
                "max_fit_points": 5000, "method": "hannan_rissanen", "season": "auto"}
    #: A window holds the dominant period + 20 steps (so ``season="auto"`` can difference at
    #: it: max_p + d priming + 10 scored steps), at most Orion's 250, 30 steps when the signal
    #: has no period; every training window (the series is rebuilt from them).
    sensor_rule = SensorRule(frames=250, min_frames=30, no_period=30, period_extra=20, train_windows=None)

    def build(self) -> nn.Module:
        h = self.hyper
        if (h["select"] not in ("aic", "fixed") or h["combine"] not in COMBINE
                or h["method"] not in ("hannan_rissanen", "statespace")):
            raise ScorerError(f"arima: select must be aic|fixed, method hannan_rissanen|statespace "
                              f"and combine one of {COMBINE}: {h}")
        if h["max_p"] < 0 or h["max_q"] < 0 or h["max_p"] + h["max_q"] < 1 or h["d"] not in (0, 1, 2):
            raise ScorerError(f"arima: need max_p, max_q >= 0 (not both 0) and d in 0..2: {h}")
        if self.input_spec.frames <= h["d"] + h["max_p"]:
            raise ScorerError(f"arima: windows of {self.input_spec.frames} steps are too short for "
                              f"d={h['d']} and max_p={h['max_p']}")
        return ArmaErrors(self.input_spec.features, max_p=h["max_p"], max_q=h["max_q"], d=h["d"])

    def _season(self, segments: list[torch.Tensor]) -> int:
        """``season``: 0 (none), a lag in steps, or ``"auto"``: the longest segment's dominant
        period (``models/sensor_rules.py``), searched up to what a window can hold
        (T - max_p - d - 10 scored steps)."""
        want = self.hyper["season"]
        limit = self.input_spec.frames - self.hyper["max_p"] - self.hyper["d"] - 10
        if want == "auto":
            return dominant_period(max(segments, key=len), limit)
        if not isinstance(want, int) or want < 0 or (want and want > limit):
            raise ScorerError(f"arima: season must be 0, 'auto' or a lag <= {limit} for windows of "
                              f"{self.input_spec.frames} steps, got {want!r}")
        return want

    def _orders(self) -> list[tuple[int, int]]:
        h = self.hyper
        if h["select"] == "fixed":
            return [(h["max_p"], h["max_q"])]
        return [(p, q) for p in range(h["max_p"] + 1) for q in range(h["max_q"] + 1) if p + q]

    def fit(self, windows: torch.Tensor, *, labels: torch.Tensor | None = None,
            progress: Progress | None = None) -> FitReport:
        from statsmodels.tsa.arima.model import ARIMA  # noqa: PLC0415 - heavy import

        check_training_windows(self.name, windows, self.input_spec)
        h, m = self.hyper, self.module
        t0 = time.perf_counter()
        segments = contiguous_segments(windows.detach().cpu().double())
        m.season.fill_(self._season(segments))
        # the model is fitted on the seasonally differenced series (SARIMA with D = 1)
        segments = [m.seasonal(seg[None])[0] for seg in segments if len(seg) > int(m.season)]
        raw_segments = contiguous_segments(windows.detach().cpu().double())
        # Segments are joined end to end: a few spurious transitions at the joins, negligible
        # for real training data (one or a few long segments) and far faster than NaN gaps.
        series = torch.cat(segments).numpy()[-h["max_fit_points"]:]
        chosen, aics = [], []
        orders = self._orders()
        fit_kw = {} if h["method"] == "statespace" else {"method": h["method"]}
        for c in range(series.shape[1]):
            y = series[:, c]
            finite = y[np.isfinite(y)]
            m.mu[c] = float(finite.mean())
            if finite.std() < 1e-9:  # a constant channel: forecast its value, no dynamics
                chosen.append((0, 0))
                aics.append(None)
                continue
            best = None
            for kw in (fit_kw, {}) if fit_kw else ({},):  # fall back to the exact MLE
                for p, q in orders:
                    with warnings.catch_warnings():
                        warnings.simplefilter("ignore")
                        try:
                            yc = y - m.mu[c].item() if h["d"] == 0 else y
                            res = ARIMA(yc, order=(p, h["d"], q), trend="n").fit(**kw)
                        except (ValueError, ArithmeticError, np.linalg.LinAlgError):
                            continue
                    if np.isfinite(res.aic) and (best is None or res.aic < best[0]):
                        best = (float(res.aic), p, q, res)
                if best is not None:
                    break
            if best is None:  # nothing fits (a near-constant channel): forecast its mean
                chosen.append((0, 0))
                aics.append(None)
                continue
            aic, p, q, res = best
            m.ar[c].zero_()
            m.ma[c].zero_()
            m.ar[c, :p] = torch.as_tensor(res.arparams, dtype=torch.float32)
            m.ma[c, :q] = torch.as_tensor(res.maparams, dtype=torch.float32)
            if h["d"]:
                m.mu[c] = 0.0
            chosen.append((p, q))
            aics.append(round(aic, 3))
            if progress is not None:
                progress(c + 1, series.shape[1], aic)
        with torch.no_grad():
            errs = torch.cat([m(s[None].float()).abs()[0] for s in raw_segments
                              if len(s) > int(m.season) + h["d"] + m.max_p])
            m.scale.copy_(errs.mean(dim=0).clamp_min(1e-3) if len(errs) else torch.ones_like(m.scale))
            if h["combine"] == "mewma":
                m.precision.copy_(mewma_precision(self._signed_errors(windows), h["span"]))
        return FitReport(epochs=1, seconds=time.perf_counter() - t0,
                         final_loss=float(errs.square().mean()) if len(errs) else float("nan"),
                         n_windows=int(windows.shape[0]),
                         extra={"orders": [[p, h["d"], q] for p, q in chosen], "aic": aics,
                                "season": int(m.season),
                                "segments": len(segments), "fit_points": int(len(series))})

    def _signed_errors(self, x: torch.Tensor) -> torch.Tensor:
        """One-step errors over the training error scale, ``[B, S, F]``."""
        x = x.to(self.device, torch.float32)
        return torch.cat([self.module(x[i:i + 4096]) for i in range(0, len(x), 4096)]) / self.module.scale

    @torch.inference_mode()
    def score_detail(self, batch: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return window_score(self._signed_errors(self.check_batch(batch)), self.hyper["span"],
                            self.hyper["combine"], self.module.precision)

    @classmethod
    def test_params(cls) -> dict:
        return {"max_p": 1, "max_q": 0, "select": "fixed", "span": 2}
