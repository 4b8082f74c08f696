"""Whether, and with which margin, ws-ae's stage 2 should run: cross-validation over the
labelled anomaly clips, so that no choice looks at a test clip.

The paper's recipe (push every labelled vector past the stage-1 gamma threshold) carries over
to steady machine sound (MIMII fan: AUC +0.17) but not to transient sound (DCASE valve: below
its own stage 1). A user handing over a few labelled faults cannot tell which case is theirs, so
training asks the labels themselves: the labelled clips are split into folds; for each fold and
each candidate margin (a multiple of the stage-1 threshold), stage 2 runs from the stage-1
weights on the other folds' clips, and the fold's clips are scored, window by window, against
the held-out normal clips (the ones that also fit the alerting threshold and that no stage
trains on), both by the fold's model. Stage 1 alone is a candidate too, scored on the same
folds. Stage 2 is kept only when a margin's mean window AUC beats stage 1's by more than the
standard error of its per-fold gains; otherwise the model stays stage 1 and says so.
"""
from __future__ import annotations

import copy
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from workers.model import LoadedModel
from workers.offline import score_clips

#: The candidate margins, as multiples of the stage-1 gamma threshold (1 = the paper's).
DEFAULT_SCALES = (1.0, 2.0, 4.0)


@dataclass
class Stage2Choice:
    """The outcome: ``scale`` None = keep stage 1; ``cv`` = mean window AUC per candidate."""

    scale: float | None
    cv: dict[str, float]
    folds: list[list[str]]
    per_fold: dict[str, list[float]] = field(default_factory=dict)
    seconds: float = 0.0
    reason: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {"chosen_margin_scale": self.scale, "cv_window_auc": self.cv,
                "cv_window_auc_per_fold": self.per_fold, "folds": self.folds,
                "seconds": round(self.seconds, 3), "reason": self.reason}


def window_auc(positives: list[float], negatives: list[float]) -> float:
    """P(score of a labelled window > score of a normal window), ties counted half."""
    pos, neg = np.asarray(positives, float), np.asarray(negatives, float)
    greater = (pos[:, None] > neg[None, :]).sum()
    ties = (pos[:, None] == neg[None, :]).sum()
    return float((greater + 0.5 * ties) / (len(pos) * len(neg)))


def choose_stage2(model: LoadedModel, normals: torch.Tensor,
                  weak: list[tuple[str, np.ndarray, torch.Tensor]],
                  held_normals: list[tuple[str, np.ndarray]], *, seed: int,
                  scales: tuple[float, ...] = DEFAULT_SCALES, folds: int = 5,
                  baseline: str = "stage 1") -> Stage2Choice:
    """Cross-validate stage 2 for ``model`` (its scorer holds the stage-1 weights and margin).

    ``weak``: (name, audio, vectors) per labelled clip; ``held_normals``: (name, audio) of the
    held-out normal clips. The scorer is left as it came (every fold trains a copy).
    ``baseline`` names the model as it came in the reason (retraining: "the current model").
    """
    t0 = time.perf_counter()
    scorer = model.scorer
    base = float(scorer.hyper["margin"]) / float(scorer.hyper.get("margin_scale", 1.0))
    order = np.random.default_rng(seed).permutation(len(weak))
    groups = [g.tolist() for g in np.array_split(order, min(folds, len(weak)))]

    def window_scores(m: LoadedModel, clips: list[tuple[str, np.ndarray]]) -> list[float]:
        return [w.score for r in score_clips(m, clips) for w in r.windows]

    def fold_auc(m: LoadedModel, held: list[int], negatives: list[float] | None = None) -> float:
        # both sides scored by the candidate itself: stage 2 moves the normal clips' scores too
        if negatives is None:
            negatives = window_scores(m, held_normals)
        return window_auc(window_scores(m, [(weak[i][0], weak[i][1]) for i in held]), negatives)

    stage1_negatives = window_scores(model, held_normals)  # the same for every fold
    per_fold: dict[str, list[float]] = {"stage1": [fold_auc(model, g, stage1_negatives)
                                                   for g in groups]}
    for scale in scales:
        key = f"x{scale:g}"
        per_fold[key] = []
        for g in groups:
            trained = copy.deepcopy(scorer)
            trained.hyper["margin"] = base * scale
            rest = [weak[i][2] for i in order if i not in g]
            trained.fit_weak(normals, torch.cat(rest))
            per_fold[key].append(fold_auc(LoadedModel(None, {}, model.frontend, trained, None,
                                                      model.window), g))
    cv = {k: float(np.mean(v)) for k, v in per_fold.items()}
    gains = {k: gain_over_stage1(per_fold[k], per_fold["stage1"]) for k in cv if k != "stage1"}
    clear = [k for k, (mean, se) in gains.items() if mean > se]
    names = [[weak[i][0] for i in g] for g in groups]
    if clear:
        best = max(clear, key=lambda k: cv[k])
        scale = float(best[1:])
        reason = (f"stage 2 with margin x{scale:g}: cross-validated window AUC {cv[best]:.3f} "
                  f"against {cv['stage1']:.3f} for {baseline} alone (gain {gains[best][0]:+.3f}, "
                  f"standard error {gains[best][1]:.3f} over {len(groups)} folds)")
    else:
        best = max(gains, key=lambda k: cv[k])
        scale = None
        reason = (f"{baseline} kept: no stage-2 margin beat {baseline} on held-out labelled clips by "
                  f"more than its standard error (best x{best[1:]} {cv[best]:.3f} vs {baseline} "
                  f"{cv['stage1']:.3f}: gain {gains[best][0]:+.3f}, standard error "
                  f"{gains[best][1]:.3f} over {len(groups)} folds)")
    return Stage2Choice(scale, cv, names, per_fold, time.perf_counter() - t0, reason)


def gain_over_stage1(candidate: list[float], stage1: list[float]) -> tuple[float, float]:
    """(mean, standard error) of a candidate's per-fold AUC gain over stage 1 on the same folds.

    Why the standard error: a fold holds one or two labelled clips, so a fold's AUC swings by
    tenths on the clips it happens to hold (valve: one fold at .97 carried a margin whose other
    folds lost or tied). Stage 2 is kept only when its mean gain exceeds one standard error
    (the one-standard-error rule, with stage 1 as the simpler model).
    """
    d = np.asarray(candidate, float) - np.asarray(stage1, float)
    se = float(d.std(ddof=1) / np.sqrt(len(d))) if len(d) > 1 else 0.0
    return float(d.mean()), se
