"""Training and scoring wrapper for the condition classifier (registry ``condition-clf``).

Trained on normal patches to tell apart the conditions the clips were recorded under
(machine ID, section, operating attributes such as a valve's ``pat_XX``); a patch's score is
``1 - cos`` between its embedding and the centre of its own condition: how badly it fits
the condition it claims. Cosine to the centre rather than the own-class probability: it
needs no calibration of the head's scale, and the class weights only see the margin loss
while the centres are measured on the training patches themselves.

The condition of what is scored: a model trained on one condition scores with it; a model
that knows several must be bound to one with ``with_condition(name)`` (a stream is one
machine in one program), and an unknown name is an error that lists the known ones.

With one condition there is nothing to tell apart, so extra "not this machine" classes are
added: ``exposure`` patches (other machines' normal sound, passed to ``fit``) and, with
``pseudo="mel-shift"``, the training patches moved up or down by ``shift_bands`` mel bands (a
pitch shift); scoring still uses only the real conditions' centres.
"""
from __future__ import annotations

import copy
import time

import torch
import torch.nn.functional as F
from torch import nn

from ..base import FitReport, Progress, Scorer, check_training_windows, epoch_batches, finite_or_raise
from ..errors import ScorerError
from .net import ConditionClassifier

EXPOSURE = "exposure:other-machines"
PSEUDO = "pseudo:mel-shift"


class ConditionClassifierScorer(Scorer):
    name = "condition-clf"
    defaults = {"channels": [8, 16, 32, 64], "embed": 64, "scale": 16.0, "margin": 0.3, "epochs": 30,
                "batch_size": 64, "lr": 1e-3, "pseudo": "auto", "shift_bands": 6,
                "train_stride": 2, "augment": True,
                "conditions": [], "known": 1}
    #: patches of 24 frames (0.8 s), a new one every 4 frames: one to three per 1 s alerting window
    audio_defaults = {**Scorer.audio_defaults, "frames": 24, "vector_hop": 4}
    fit_context = ("conditions", "exposure")

    def __init__(self, **kw) -> None:
        super().__init__(**kw)
        self.condition: int | None = None

    def build(self) -> nn.Module:
        h = self.hyper
        if h["pseudo"] not in ("auto", "mel-shift", "none"):
            raise ScorerError(f"condition-clf: pseudo must be auto, mel-shift or none, got {h['pseudo']!r}")
        torch.manual_seed(self.seed)
        return ConditionClassifier(max(len(h["conditions"]), 2), channels=tuple(h["channels"]),
                                   embed=h["embed"], scale=h["scale"], margin=h["margin"])

    # -- the condition ----------------------------------------------------------------------
    @property
    def known_conditions(self) -> list[str]:
        """The real conditions (not the exposure or pseudo classes), in class order."""
        return list(self.hyper["conditions"][: self.hyper["known"]])

    def with_condition(self, condition: str) -> "ConditionClassifierScorer":
        """This scorer (same weights) scoring every patch against ``condition``'s centre."""
        known = self.known_conditions
        if condition not in known:
            raise ScorerError(f"condition-clf: unknown condition {condition!r}; this model knows "
                              f"{', '.join(known) or 'none (it is not trained)'}")
        bound = copy.copy(self)
        bound.condition = known.index(condition)
        return bound

    def condition_index(self) -> int:
        if self.condition is not None:
            return self.condition
        if self.hyper["known"] == 1:
            return 0
        raise ScorerError(f"condition-clf: this model knows {self.hyper['known']} conditions "
                          f"({', '.join(self.known_conditions)}); the stream's condition must be "
                          "given (models[].condition in the config, --condition, or the clip name)")

    # -- training ----------------------------------------------------------------------------
    def fit(self, windows: torch.Tensor, *, labels: torch.Tensor | None = None,
            progress: Progress | None = None, conditions: list[str] | None = None,
            exposure: torch.Tensor | None = None) -> FitReport:
        check_training_windows(self.name, windows, self.input_spec)
        if labels is not None:
            raise ScorerError("condition-clf learns from normal windows only (labels: none)")
        h = self.hyper
        names = sorted(set(conditions)) if conditions is not None else ["default"]
        if conditions is not None and len(conditions) != len(windows):
            raise ScorerError(f"condition-clf: {len(conditions)} conditions for {len(windows)} windows")
        index = {n: i for i, n in enumerate(names)}
        y = torch.tensor([index[c] for c in conditions]) if conditions is not None else \
            torch.zeros(len(windows), dtype=torch.long)
        stride = int(h["train_stride"])  # every k-th patch: overlapping patches repeat audio
        x, y = windows[::stride].to(torch.float32), y[::stride]
        exposure = exposure[::stride] if exposure is not None else None
        classes = list(names)
        extra_x, extra_y = [], []
        if exposure is not None and len(exposure):
            classes.append(EXPOSURE)
            extra_x.append(exposure.to(torch.float32))
            extra_y.append(torch.full((len(exposure),), len(classes) - 1))
        pseudo = h["pseudo"] == "mel-shift" or (h["pseudo"] == "auto" and len(classes) == 1)
        if pseudo:
            k = int(h["shift_bands"])
            classes.append(PSEUDO)
            shifted = torch.cat([torch.roll(x, k, dims=2), torch.roll(x, -k, dims=2)])
            gen = self._generator()
            pick = torch.randperm(len(shifted), generator=gen)[: len(x)]
            extra_x.append(shifted[pick])
            extra_y.append(torch.full((len(pick),), len(classes) - 1))
        if len(classes) < 2:
            raise ScorerError("condition-clf: one condition and no exposure or pseudo class: "
                              "nothing to tell apart (set pseudo to mel-shift or pass exposure)")
        h["conditions"], h["known"] = classes, len(names)
        self.module = self.build().to(self.device)
        xa = torch.cat([x, *extra_x]).to(self.device)
        ya = torch.cat([y, *extra_y]).to(self.device)
        net = self.module
        with torch.no_grad():
            net.embedder.center.fill_(float(x.mean()))
            net.embedder.spread.fill_(float(x.std()) or 1.0)
        gen = self._generator()
        opt = torch.optim.Adam(net.parameters(), lr=h["lr"])
        t0 = time.perf_counter()
        loss_value = float("nan")
        for epoch in range(h["epochs"]):
            net.train()
            total = 0.0
            for idx in epoch_batches(len(xa), h["batch_size"], gen):
                if idx.numel() < 2:  # BatchNorm cannot train on one sample
                    continue
                idx = idx.to(self.device)
                opt.zero_grad(set_to_none=True)
                xb = self._augment(xa[idx], gen) if h["augment"] else xa[idx]
                loss = F.cross_entropy(net.head(net(xb), ya[idx]), ya[idx])
                loss.backward()
                opt.step()
                total += loss.item() * len(idx)
            loss_value = finite_or_raise(self.name, total / len(xa))
            if progress is not None:
                progress(epoch + 1, h["epochs"], loss_value)
        net.eval()
        with torch.no_grad():
            emb = torch.cat([net(xa[i:i + 512]) for i in range(0, len(xa), 512)])
            for c in range(len(classes)):
                net.centres[c] = F.normalize(emb[ya == c].mean(dim=0), dim=0)
            acc = float((net.head.cosine(emb).argmax(dim=1) == ya).float().mean())
        return FitReport(epochs=h["epochs"], seconds=time.perf_counter() - t0, final_loss=loss_value,
                         n_windows=int(len(windows)), extra={"classes": classes, "trained_patches": int(len(x)), "train_accuracy": round(acc, 4),
                                                       "extra_patches": int(len(xa) - len(x))})

    @staticmethod
    def _augment(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        """SpecAugment-style masks (a quarter of the frames, an eighth of the bands, at random
        places) and a random level offset of up to +-6 dB per patch: so that a clip's level or
        one stretch of it cannot identify its condition."""
        b, t, f = x.shape
        x = x + (torch.rand(b, 1, 1, generator=gen) * 12 - 6).to(x)
        t0 = torch.randint(0, max(1, t - t // 4), (b, 1), generator=gen)
        f0 = torch.randint(0, max(1, f - f // 8), (b, 1), generator=gen)
        tmask = (torch.arange(t) >= t0) & (torch.arange(t) < t0 + t // 4)
        fmask = (torch.arange(f) >= f0) & (torch.arange(f) < f0 + f // 8)
        fill = x.mean(dim=(1, 2), keepdim=True)
        x = torch.where(tmask.to(x.device)[:, :, None], fill, x)
        return torch.where(fmask.to(x.device)[:, None, :], fill, x)

    # -- scoring ------------------------------------------------------------------------------
    @torch.inference_mode()
    def score_detail(self, batch: torch.Tensor) -> tuple[torch.Tensor, None]:
        x = self.check_batch(batch)
        c = self.condition_index()
        if not len(x):
            return x.new_zeros(0), None
        return 1.0 - self.module(x) @ self.module.centres[c], None

    @classmethod
    def test_params(cls) -> dict:
        return {"epochs": 3, "channels": [4, 8, 8, 8], "embed": 8}
