"""Training and scoring wrapper for the LSTM forecaster (registry name ``lstm``).

Window layout (``T = input_spec.frames``): the first ``context`` steps only warm the LSTM
up; from then on it forecasts after every step, and reading ``x[j]`` is compared with the
mean of the (up to ``horizon``) forecasts made for it inside the window (telemanom averages
the overlapping forecasts of a step the same way). The absolute errors are divided by each
channel's mean training error (learned in ``fit``), EWMA-smoothed over the window's scored
steps (``span``) and read at the last step: the window's score is about its newest reading.
Channels are combined by ``combine`` (mean, max or rms); the per-channel values are the
explanation. ``combine="mewma"`` smooths the signed errors instead and scores their
multivariate EWMA chart statistic (``models/series.py``). The context is at most half the
window, and small windows (the contract test's T = 5) shrink the horizon to fit.
"""
from __future__ import annotations

import torch
from torch import nn

from ..base import EarlyStopping, FitReport, Progress, Scorer
from ..errors import ScorerError
from ..sensor_rules import SensorRule
from ..series import COMBINE, mewma_precision, window_score
from .net import LstmForecaster


class LstmForecastScorer(Scorer):
    name = "lstm"
    added_buffers = ("precision",)  # combine="mewma", 2026-12-02; unused by the others
    defaults = {"hidden": 80, "layers": 2, "dropout": 0.3, "horizon": 10, "context": 50,
                "span": 10, "combine": "mean", "epochs": 35, "batch_size": 70, "lr": 1e-3,
                "validation": 0.2, "patience": 10}
    #: Sensor windows: at most telemanom's 250 input steps + its 10 forecast ones (l_s,
    #: n_predictions), shorter for a shorter dominant period (down to 40); at most 500 training
    #: windows per fit.
    sensor_rule = SensorRule(frames=260, min_frames=40, train_windows=500)

    def build(self) -> nn.Module:
        h = self.hyper
        if h["combine"] not in COMBINE:
            raise ScorerError(f"lstm: combine must be one of {COMBINE}, got {h['combine']!r}")
        if min(h["horizon"], h["hidden"], h["layers"], h["span"]) < 1 or h["context"] < 0:
            raise ScorerError(f"lstm: horizon, hidden, layers, span must be >= 1 and context >= 0: {h}")
        if self.input_spec.frames < 2:
            raise ScorerError("lstm: windows need at least 2 steps (one to read, one to forecast)")
        torch.manual_seed(self.seed)
        net = LstmForecaster(self.input_spec.features, hidden=h["hidden"], layers=h["layers"],
                             dropout=h["dropout"], horizon=h["horizon"])
        net.register_buffer("err_scale", torch.ones(self.input_spec.features))
        net.register_buffer("precision", torch.eye(self.input_spec.features))  # for combine="mewma"
        return net

    # -- window layout ------------------------------------------------------------------
    @property
    def first_position(self) -> int:
        """Index of the first step whose forecast counts (after the warm-up context): at most
        half the window warms up, so short windows (SKAB's) keep steps to score."""
        t = self.input_spec.frames
        return min(self.hyper["context"], t // 2, t - 2)

    @property
    def steps(self) -> int:
        """Forecast horizon used inside a window (the configured one, at most T - 1)."""
        return min(self.hyper["horizon"], self.input_spec.frames - 1)

    def _loss(self, x: torch.Tensor) -> torch.Tensor:
        out, p0, t = self.module(x), self.first_position, x.shape[1]
        losses = [(out[:, p0:t - 1 - k, k] - x[:, p0 + 1 + k:]).square().mean()
                  for k in range(self.steps) if p0 + 1 + k < t]
        return torch.stack(losses).mean()

    def _errors(self, x: torch.Tensor) -> torch.Tensor:
        """``[B, T, F]`` -> signed errors ``[B, S, F]`` of the scored steps ``p0+1 .. T-1``
        (reading minus the mean of the forecasts made for it)."""
        out, p0, t = self.module(x), self.first_position, x.shape[1]
        total = torch.zeros_like(x[:, p0 + 1:])
        count = torch.zeros(t - p0 - 1, 1, device=x.device)
        for k in range(self.steps):
            if p0 + 1 + k >= t:
                break
            total[:, k:] += out[:, p0:t - 1 - k, k]
            count[k:] += 1
        return x[:, p0 + 1:] - total / count

    # -- contract -------------------------------------------------------------------------
    def fit(self, windows: torch.Tensor, *, labels: torch.Tensor | None = None,
            progress: Progress | None = None) -> FitReport:
        h = self.hyper
        report = self.fit_minibatches(windows, self._loss, progress=progress,
                                      stopping=EarlyStopping(h["patience"], min_delta=3e-4, restore_best=True))
        x = windows.to(self.device, torch.float32)
        with torch.no_grad():
            errs = torch.cat([self._errors(x[i:i + 1024]) for i in range(0, len(x), 1024)])
            self.module.err_scale.copy_(errs.abs().mean(dim=(0, 1)).clamp_min(1e-6))
            if h["combine"] == "mewma":
                self.module.precision.copy_(mewma_precision(errs / self.module.err_scale, h["span"]))
        report.extra["err_scale"] = self.module.err_scale.tolist()
        return report

    @torch.inference_mode()
    def score_detail(self, batch: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = self.check_batch(batch)
        return window_score(self._errors(x) / self.module.err_scale, self.hyper["span"], self.hyper["combine"],
                            self.module.precision)

    @classmethod
    def test_params(cls) -> dict:
        return {"hidden": 16, "epochs": 3, "batch_size": 64, "context": 2, "horizon": 2}
