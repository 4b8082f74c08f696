"""Training and scoring wrapper for the convolutional autoencoder (registry ``conv-ae``).

Score of a window = the SKAB notebooks' residual: the absolute reconstruction error averaged
over the window's T steps, summed over channels; the per-channel averages are the
explanation. Training follows the anchor: MSE, Adam 1e-3, batch 32, up to 100 epochs, the
last 10 % of the windows (in time order) held out for early stopping with patience 5; as
Keras' EarlyStopping without restore_best_weights, the weights of the last epoch are kept.
"""
from __future__ import annotations

import torch
from torch import nn

from ..base import EarlyStopping, FitReport, Progress, Scorer
from ..errors import ScorerError
from ..sensor_rules import SensorRule
from .net import ConvAutoencoder


class ConvAutoencoderScorer(Scorer):
    name = "conv-ae"
    defaults = {"filters": [32, 16], "kernel": 7, "dropout": 0.2, "output": "shared", "epochs": 100,
                "batch_size": 32, "lr": 1e-3, "validation": 0.1, "patience": 5}
    #: At most the SKAB notebook's N_STEPS (60), shorter for a shorter dominant period (down to
    #: 20), a multiple of 4 (the encoder halves time twice); at most 5,000 training windows.
    sensor_rule = SensorRule(frames=60, min_frames=20, train_windows=5000, multiple=4)

    def build(self) -> nn.Module:
        h = self.hyper
        if h["output"] not in ("shared", "per-channel"):
            raise ScorerError(f"conv-ae: output must be 'shared' (the anchor's one trace) or "
                              f"'per-channel', got {h['output']!r}")
        if len(h["filters"]) != 2 or min(h["filters"]) < 1 or h["kernel"] < 1 or h["kernel"] % 2 == 0:
            raise ScorerError(f"conv-ae: filters must be two positive counts and kernel an odd size: {h}")
        torch.manual_seed(self.seed)
        out = 1 if h["output"] == "shared" else self.input_spec.features
        return ConvAutoencoder(self.input_spec.features, filters=tuple(h["filters"]), kernel=h["kernel"],
                               dropout=h["dropout"], out_channels=out)

    def _residual(self, x: torch.Tensor) -> torch.Tensor:
        """``[B, T, F]`` -> mean absolute error per channel ``[B, F]``."""
        return (x - self.module(x)).abs().mean(dim=1)

    def fit(self, windows: torch.Tensor, *, labels: torch.Tensor | None = None,
            progress: Progress | None = None) -> FitReport:
        return self.fit_minibatches(windows, lambda xb: (self.module(xb) - xb).square().mean(),
                                    stopping=EarlyStopping(self.hyper["patience"], min_delta=0.0,
                                                           restore_best=False), progress=progress)

    @torch.inference_mode()
    def score_detail(self, batch: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = self.check_batch(batch)
        per_channel = self._residual(x)
        return per_channel.sum(dim=1), per_channel

    @classmethod
    def test_params(cls) -> dict:
        return {"epochs": 3, "batch_size": 64}
