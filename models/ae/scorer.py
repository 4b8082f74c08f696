"""Training and scoring wrapper for the DCASE autoencoder (registry name ``ae``).

Score of a vector = mean squared reconstruction error over its T x F inputs, as the DCASE
baseline computes it; the per-feature contribution is that error averaged over the T frames,
which names the mel bands (or sensor channels) that explain an event.
"""
from __future__ import annotations

import time

import torch
from torch import nn

from ..base import (EarlyStopping, FitReport, Progress, Scorer, check_training_windows, minibatch_epoch,
                    train_by_epochs)
from ..dense import build_dense
from ..sensor_rules import SensorRule
from .fast import FoldedAutoencoder
from .net import DcaseAutoencoder


class AutoencoderScorer(Scorer):
    name = "ae"
    defaults = {"hidden": 128, "latent": 8, "layers": 4, "epochs": 100, "batch_size": 512,
                "lr": 1e-3}

    #: Sensor windows of 10 steps (no period rule: the dense AE sees a window as one vector).
    sensor_rule = SensorRule(frames=10, min_frames=10, train_windows=5000)

    def build(self) -> nn.Module:
        return build_dense(DcaseAutoencoder, spec=self.input_spec, hyper=self.hyper, seed=self.seed)

    def fit(self, windows: torch.Tensor, *, labels: torch.Tensor | None = None,
            progress: Progress | None = None) -> FitReport:
        check_training_windows(self.name, windows, self.input_spec)
        h = self.hyper
        x = windows.reshape(windows.shape[0], -1).to(self.device, torch.float32)
        gen = self._generator()
        opt = torch.optim.Adam(self.module.parameters(), lr=h["lr"])
        loss_fn = nn.MSELoss()

        def epoch() -> float:
            return minibatch_epoch(opt, lambda idx: loss_fn(self.module(x[idx]), x[idx]), x.shape[0],
                                   h["batch_size"], gen, self.device, min_batch=2)

        t0 = time.perf_counter()
        # the DCASE recipe trains all its epochs: no validation split, no early stop
        info = train_by_epochs(self.name, self.module, epoch, epochs=h["epochs"], val_loss=None,
                               stopping=EarlyStopping(patience=h["epochs"]), progress=progress)
        return FitReport(epochs=info["epochs"], seconds=time.perf_counter() - t0,
                         final_loss=info["final_loss"], n_windows=int(x.shape[0]))

    #: Score through the folded inference form (``fast.py``); ``False`` = the plain module.
    fast: bool = True

    @torch.inference_mode()
    def score_detail(self, batch: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = self.check_batch(batch)
        if self.fast and not self.module.training and x.shape[0]:
            return self.folded().score_detail(x)
        return self.score_detail_plain(x)

    @torch.inference_mode()
    def score_detail_plain(self, batch: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The unoptimised path (the module as trained): the reference the fast path must equal."""
        x = self.check_batch(batch)
        b, t, f = x.shape
        recon = self.module(x.reshape(b, t * f)).reshape(b, t, f)
        per_feature = (x - recon).square_().mean(dim=1)
        return per_feature.mean(dim=1), per_feature

    def folded(self) -> FoldedAutoencoder:
        """The BatchNorm-folded form, rebuilt whenever a weight or statistic has changed."""
        key = tuple(t._version for t in (*self.module.parameters(), *self.module.buffers()))
        key = (id(self.module), self.device, key)
        cached = getattr(self, "_folded", None)
        if cached is None or cached[0] != key:
            self._folded = (key, FoldedAutoencoder(self.module))
        return self._folded[1]

    @classmethod
    def test_params(cls) -> dict:
        return {"epochs": 3, "batch_size": 64}
