"""Training and scoring wrapper for the weakly-supervised autoencoder (registry ``ws-ae``).

Stage 1 (unsupervised): minimise the reconstruction error of normal vectors; then fit a gamma
(loc 0) on the training vectors' scores and take its ``ppf(r)`` as the margin ``theta``.
Stage 2 (weakly supervised, only when labelled anomalies are given): per vector, the paper's
contrastive loss ``y * e + (1 - y) * max(0, theta - e)`` (``y = 1`` normal), on mini-batches
balanced by oversampling the few anomalies. ``labels`` here follow the product's convention
(1 = anomaly), i.e. the paper's ``y = 1 - label``.

Score of a vector ``e`` = mean squared reconstruction error over its T x F (standardised)
inputs, the paper's squared Euclidean distance divided by T*F (a gamma fit does not care).
Both stages stop early on a validation loss (the paper ran 2000 epochs each).
"""
from __future__ import annotations

import time

import torch
from torch import nn

from ..base import (EarlyStopping, FitReport, Progress, Scorer, check_training_windows, minibatch_epoch,
                    time_ordered_split, train_by_epochs)
from ..dense import build_dense
from ..errors import ScorerError
from ..threshold import CONVENTIONS, fit_threshold
from .net import WeaklySupervisedAutoencoder


class WeaklySupervisedAEScorer(Scorer):
    name = "ws-ae"
    #: ``epochs`` / ``stage2_epochs`` are caps; ``patience`` epochs without a better validation
    #: loss stop a stage. ``margin`` is fitted by stage 1 (kept in meta for retraining).
    #: ``stage2_select``: "cv" = training with labelled clips picks the margin among
    #: ``select_scales`` x theta, or no stage 2, by ``select_folds``-fold cross-validation over
    #: the labelled clips (``monitor/weak_selection.py``); "fixed" = the paper's recipe at
    #: ``margin_scale``. The scorer's own ``fit(labels=...)`` is always the fixed recipe.
    defaults = {"hidden": 128, "latent": 8, "layers": 4, "lr": 1e-3, "batch_size": 256,
                "epochs": 300, "stage2_epochs": 200, "patience": 20, "val_fraction": 0.1,
                "r": CONVENTIONS["paper"], "margin": None, "margin_scale": 1.0, "standardise": False,
                "stage2_lr": 1e-3, "stage2_select": "cv", "select_scales": [1.0, 2.0, 4.0],
                "select_folds": 5}
    #: The paper's features: n_fft 2048, hop 512, 128 mels, 32-frame vectors (17,920 samples,
    #: 1.12 s), one every 8 frames (0.256 s). A vector must fit inside an alerting window, and
    #: every vector must lie wholly inside some window (window - span >= hop), so the window
    #: is 2 s with the usual 0.5 s hop (see README.md).
    audio_defaults = {"n_fft": 2048, "hop_length": 512, "n_mels": 128, "frames": 32,
                      "vector_hop": 8, "window_s": 2.0, "hop_s": 0.5}
    #: ``fit`` uses labels (stage 2); ``monitor train --weak`` checks this.
    weakly_supervised = True
    #: The paper's gamma convention (loc 0, ppf 0.99) unless training asks for another.
    threshold_convention = "paper"

    def build(self) -> nn.Module:
        return build_dense(WeaklySupervisedAutoencoder, spec=self.input_spec, hyper=self.hyper, seed=self.seed)

    # -- training -----------------------------------------------------------------------
    def fit(self, windows: torch.Tensor, *, labels: torch.Tensor | None = None,
            progress: Progress | None = None) -> FitReport:
        """Stage 1 on the normal windows, then stage 2 when ``labels`` mark anomalies (1)."""
        check_training_windows(self.name, windows, self.input_spec)
        if labels is not None:
            labels = torch.as_tensor(labels).reshape(-1).bool()
            if labels.numel() != windows.shape[0]:
                raise ScorerError(f"{self.name}: {labels.numel()} labels for {windows.shape[0]} windows")
        normals = windows if labels is None else windows[~labels]
        anomalies = None if labels is None or not labels.any() else windows[labels]
        check_training_windows(self.name, normals, self.input_spec)
        t0 = time.perf_counter()
        s1 = self.fit_normal(normals, progress=progress)
        extra = {"stage1": s1}
        if anomalies is not None:
            extra["stage2"] = self.fit_weak(normals, anomalies, progress=progress)
        last = extra.get("stage2", s1)
        return FitReport(epochs=s1["epochs"] + extra.get("stage2", {}).get("epochs", 0),
                         seconds=time.perf_counter() - t0, final_loss=last["final_loss"],
                         n_windows=int(windows.shape[0]),
                         extra={**extra, "stages": 2 if anomalies is not None else 1,
                                "margin": self.hyper["margin"]})

    def fit_normal(self, normals: torch.Tensor, *, progress: Progress | None = None) -> dict:
        """Stage 1: reconstruction on normal vectors; fits the margin ``theta``."""
        h = self.hyper
        x = self._flat(normals)
        if h["standardise"]:
            self.module.set_standardisation(x.mean(0), x.std(0))
        train, val = self._split(x)
        opt = torch.optim.Adam(self.module.parameters(), lr=h["lr"])
        gen = self._generator()

        def step(idx: torch.Tensor) -> torch.Tensor:
            return self.module.errors(train[idx]).mean()

        def val_loss() -> float:
            return float(self._vector_errors(val).mean())

        info = self._train(opt, gen, train.shape[0], step, val_loss, epochs=h["epochs"],
                           batch=h["batch_size"], progress=progress, stage="stage1")
        scores = self._vector_errors(x).cpu().numpy()
        thr = fit_threshold(scores, convention="paper", q=h["r"],
                            fitted_on=f"{len(scores)} stage-1 training vectors")
        self.hyper["margin"] = float(thr.value) * float(h["margin_scale"])
        info.update(margin=self.hyper["margin"], gamma_a=thr.params["a"],
                    gamma_scale=thr.params["scale"], n_vectors=int(x.shape[0]))
        return info

    def fit_weak(self, normals: torch.Tensor, anomalies: torch.Tensor, *,
                 progress: Progress | None = None) -> dict:
        """Stage 2 from the current weights: normals reconstructed, anomalies pushed past theta."""
        h = self.hyper
        if h["margin"] is None:
            raise ScorerError(f"{self.name}: stage 2 needs the stage-1 margin; train stage 1 first")
        check_training_windows(self.name, normals, self.input_spec)
        if len(anomalies):  # none = fine-tuning on normals only (false alarms labelled normal)
            check_training_windows(self.name, torch.cat([anomalies, anomalies]), self.input_spec)
        x, xa = self._flat(normals), self._flat(anomalies)
        train, val = self._split(x)
        theta = float(h["margin"])
        half = max(1, h["batch_size"] // 2)
        opt = torch.optim.Adam(self.module.parameters(), lr=h["stage2_lr"])
        gen = self._generator()

        def step(idx: torch.Tensor) -> torch.Tensor:
            if not len(xa):
                return self.module.errors(train[idx]).mean()
            # oversampling: as many anomalies (drawn with replacement) as normals in the batch
            ia = torch.randint(0, xa.shape[0], (idx.numel(),), generator=gen).to(self.device)
            e_n = self.module.errors(train[idx]).mean(1)
            e_a = self.module.errors(xa[ia]).mean(1)
            return torch.cat([e_n, torch.relu(theta - e_a)]).mean()

        def val_loss() -> float:
            e_n = self._vector_errors(val).mean()
            if not len(xa):
                return float(e_n)
            return float((e_n + torch.relu(theta - self._vector_errors(xa)).mean()) / 2)

        before = self._vector_errors(xa) if len(xa) else torch.zeros(1)
        info = self._train(opt, gen, train.shape[0], step, val_loss, epochs=h["stage2_epochs"],
                           batch=half, progress=progress, stage="stage2")
        after = self._vector_errors(xa) if len(xa) else torch.zeros(1)
        info.update(margin=theta, n_normal=int(x.shape[0]), n_anomaly=int(xa.shape[0]),
                    anomalies_over_margin_before=float((before > theta).float().mean()),
                    anomalies_over_margin_after=float((after > theta).float().mean()))
        return info

    def _train(self, opt, gen, n: int, step, val_loss, *, epochs: int, batch: int,
               progress: Progress | None, stage: str) -> dict:
        """Epochs of ``step`` over shuffled batches; early stopping on ``val_loss``."""
        t0 = time.perf_counter()
        info = train_by_epochs(
            self.name, self.module, lambda: minibatch_epoch(opt, step, n, batch, gen, self.device),
            epochs=epochs, val_loss=val_loss,
            stopping=EarlyStopping(self.hyper["patience"], min_delta=1e-6, restore_best=True), progress=progress)
        return {"epochs": info["epochs"], "best_epoch": info["best_epoch"], "best_val_loss": info["validation_loss"],
                "final_loss": info["final_loss"], "seconds": round(time.perf_counter() - t0, 3),
                "stopped_early": info["stopped_early"]}

    def _flat(self, windows: torch.Tensor) -> torch.Tensor:
        return windows.flatten(1).to(self.device, torch.float32)  # flatten: also with no windows

    def _split(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(train, validation): the last ``val_fraction`` of the vectors, in time order.

        Callers pass vectors clip by clip, so the tail is (mostly) whole clips that overlapping
        training vectors do not duplicate; with too few vectors, validation = training.
        """
        train, val = time_ordered_split(x, self.hyper["val_fraction"])
        return train, (train if val is None else val)

    @torch.inference_mode()
    def _vector_errors(self, x: torch.Tensor, chunk: int = 4096) -> torch.Tensor:
        if not len(x):
            return x.new_zeros(0)
        return torch.cat([self.module.errors(x[i:i + chunk]).mean(1) for i in range(0, len(x), chunk)])

    # -- scoring ------------------------------------------------------------------------
    @torch.inference_mode()
    def score_detail(self, batch: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = self.check_batch(batch)
        b, t, f = x.shape
        per_feature = self.module.errors(x.reshape(b, t * f)).reshape(b, t, f).mean(dim=1)
        return per_feature.mean(dim=1), per_feature

    @classmethod
    def test_params(cls) -> dict:
        return {"epochs": 5, "stage2_epochs": 5, "batch_size": 64}
