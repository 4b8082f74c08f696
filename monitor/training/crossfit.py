"""The alerting threshold from out-of-fold scores of *every* normal clip (cross-fitting).

The product's default fits the gamma threshold on the window scores of the held-out normal
clips (DESIGN §4.2): 10 % of them, at least 3. With a few dozen clips that is 3-5 clips, and
their tail decides every false alarm the model will raise: on the DCASE valve split, seed 1's
five held-out clips happened to score lower than the other 45 (clip medians 12.7-15.2 against
18.0), the threshold landed inside the training clips' own range and the alerting flagged 20 %
of the test normals (the gamma's 0.99 promised about 1 %).

Cross-fitting uses every clip once as held-out: the normal clips are split into ``folds``
groups; for each, the same recipe (scorer, parameters, seed and, for ws-ae, the stage-2 choice
the full model made) is trained on the other groups and scores the group. The threshold is
fitted on all those out-of-fold window scores: the distribution of a model of this recipe on
normal clips it never saw, from all clips instead of a few. It costs ``folds`` extra trainings,
so it is an option (``monitor train --threshold-folds K``), and the held-out fit stays in
``meta.threshold_variants.held_out_windows`` for comparison.
"""
from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import numpy as np

from workers.conditioned import score_clips_conditioned
from workers.model import LoadedModel

from monitor.errors import DataError


def fold_groups(n: int, folds: int, *, seed: int) -> list[list[int]]:
    """``n`` clip indices in ``folds`` seeded groups of (nearly) equal size."""
    if folds < 2:
        raise DataError(f"--threshold-folds must be at least 2, got {folds}")
    if n < folds:
        raise DataError(f"{n} normal clips cannot be split into {folds} folds (need one clip per fold)")
    order = np.random.default_rng(seed).permutation(n)
    return [sorted(g.tolist()) for g in np.array_split(order, folds)]


def out_of_fold_window_scores(clips: list[tuple[str, np.ndarray]], *, folds: int, seed: int,
                              fit_without: Callable[[set[int]], LoadedModel],
                              progress: Callable[[int, int], None] | None = None,
                              condition_of: Callable[[str], str | None] = lambda name: None,
                              ) -> tuple[list[float], dict[str, Any]]:
    """Window scores of each clip under a model trained without its fold.

    ``fit_without(indices)`` trains the recipe on every clip but those and returns the model;
    a scorer that knows conditions scores each clip under ``condition_of(name)``.
    Returns (the scores, a report for ``meta``: the folds' clip names and the seconds taken).
    """
    t0 = time.perf_counter()
    groups = fold_groups(len(clips), folds, seed=seed)
    scores: list[float] = []
    for k, group in enumerate(groups):
        model = fit_without(set(group))
        scores += [w.score for r in score_clips_conditioned(model, [clips[i] for i in group], condition_of)
                   for w in r.windows]
        if progress is not None:
            progress(k + 1, len(groups))
    return scores, {"folds": [[clips[i][0] for i in g] for g in groups],
                    "windows": len(scores), "seconds": round(time.perf_counter() - t0, 3)}
