"""The anchors' own decision rules, run on our scores for a like-for-like comparison only.

The product decides with its gamma threshold and hysteresis (``monitor/alerting``). The
published figures we compare with were decided differently, so ``evaluate`` also reports,
clearly labelled, what each anchor's rule makes of the same window scores:

- Orion (``find_anomalies`` with a fixed threshold): mean + 4 sigma of the scores inside
  sliding windows of a third of the signal, flagged points merged into intervals.
- telemanom's non-parametric dynamic threshold (Hundman et al., KDD 2018, §3.2-3.3): per
  sliding window of errors, the threshold mean + z sigma whose removal of the points above it
  cuts the mean and spread the most per flagged point and sequence; flagged points widened by a
  buffer; sequences pruned when their peak is not clearly (``p``) above the next lower one.
  Written from the paper; the scale checks of telemanom's code (ignore windows whose errors
  are small next to the raw signal's range) are left out, since our scores are already
  normalised, and so is its second pass on inverted errors (low error is not a fault here).
- SKAB's notebooks (the leaderboard's Conv-AE row): the limit is 4/3 of the 0.999 quantile of
  the window scores of the rows the model was fitted on, and a row is flagged when every
  window after it within one window length scores over it (for a window of T steps, the
  T - 1 windows ending at the row and the T - 2 after it): a consensus that looks ahead.

All are label-free: they look at the scores being decided, never at labels.
"""
from __future__ import annotations

import numpy as np

from models.threshold import PRUNE_P

ORION_RULE = ("Orion find_anomalies, fixed threshold mean + 4 sigma in sliding windows "
              "(1/3 of the signal, step 1/10), no pruning, on the same window scores")
TELEMANOM_RULE = ("telemanom non-parametric dynamic threshold (windows of 2100 scores, batches of 70, "
                  "z 2.5-11.5, buffer 100, pruning p 0.13; our implementation of the paper), on the same "
                  "window scores")


SKAB_RULE = ("SKAB notebooks' Conv-AE rule: limit 4/3 x the 0.999 quantile of the fitted rows' window "
             "scores, a row flagged when the window-length - 1 window scores from it on are all over it")


def runs_of(flags: np.ndarray) -> list[tuple[int, int]]:
    """Inclusive (first, last) index of every run of True."""
    f = np.concatenate([[False], np.asarray(flags, dtype=bool), [False]])
    edges = np.flatnonzero(np.diff(f.astype(np.int8)))
    return [(int(a), int(b) - 1) for a, b in zip(edges[::2], edges[1::2])]


def intervals(flags: np.ndarray, times: np.ndarray) -> list[tuple[float, float]]:
    """Flagged points merged into (start time, end time) intervals."""
    return [(float(times[a]), float(times[b])) for a, b in runs_of(flags)]


def orion_flags(scores: np.ndarray, *, window_portion: float = 0.33, step_portion: float = 0.1,
                k: float = 4.0) -> np.ndarray:
    n = len(scores)
    flagged = np.zeros(n, dtype=bool)
    if n == 0:
        return flagged
    w, step = max(1, int(n * window_portion)), max(1, int(n * step_portion))
    for a in range(0, max(n - w, 0) + 1, step):
        seg = scores[a:a + w]
        flagged[a:a + w] |= seg > seg.mean() + k * seg.std()
    return flagged


def widened(mask: np.ndarray, buffer: int) -> np.ndarray:
    """``mask`` with every True spread ``buffer`` points to each side."""
    if buffer <= 0 or not mask.any():
        return mask.copy()
    return np.convolve(mask.astype(np.float64), np.ones(2 * buffer + 1), mode="same") > 0.5


#: telemanom's candidate thresholds, mean + z sigma
Z_VALUES = tuple(float(z) for z in np.arange(2.5, 12.0, 0.5))


def telemanom_epsilon(e: np.ndarray, *, buffer: int = 100, z_values: tuple[float, ...] = Z_VALUES) -> float:
    """The threshold mean + z sigma maximising (relative drop of the mean + relative drop of the
    spread when the points above it are removed) / (sequences^2 + flagged points, buffer
    included); candidates flagging half the window or more, or more than 5 sequences, are not
    taken. None taken: the most conservative candidate."""
    mean, sd = float(e.mean()), float(e.std())
    best, best_score = mean + z_values[-1] * sd, -np.inf
    if sd == 0.0 or mean == 0.0:
        return best
    for z in z_values:
        eps = mean + z * sd
        below = e[e < eps]
        above = e >= eps
        if not above.any() or not len(below):
            continue
        wide = widened(above, buffer)
        n_seq = len(runs_of(wide))
        score = ((mean - below.mean()) / mean + (sd - below.std()) / sd) / (n_seq ** 2 + int(wide.sum()))
        if score >= best_score and n_seq <= 5 and wide.sum() < 0.5 * len(e):
            best, best_score = eps, score
    return best


def telemanom_prune(e: np.ndarray, sequences: list[tuple[int, int]], flagged: np.ndarray,
                    p: float) -> list[tuple[int, int]]:
    """Keep the sequences down to the last peak that is more than ``p`` (relative) above the
    next lower peak, the largest unflagged error counting as the lowest."""
    if not sequences:
        return []
    peaks = np.array([e[a:b + 1].max() for a, b in sequences])
    order = np.argsort(-peaks)
    ladder = np.append(peaks[order], e[~flagged].max() if (~flagged).any() else 0.0)
    keep = 0
    for i in range(len(order)):
        if ladder[i] > 0 and (ladder[i] - ladder[i + 1]) / ladder[i] > p:
            keep = i + 1
    return [sequences[j] for j in sorted(order[:keep])]


def telemanom_flags(scores: np.ndarray, *, window: int = 2100, batch: int = 70, buffer: int = 100,
                    p: float = PRUNE_P) -> np.ndarray:
    """Points flagged by telemanom's rule. Windows of ``window`` scores advance by ``batch``
    (the last one reaching the end); each window decides its newest points (the first window
    all of its own), so a point is judged with the history before it, as telemanom runs."""
    e = np.asarray(scores, dtype=np.float64)
    n = len(e)
    out = np.zeros(n, dtype=bool)
    if n == 0:
        return out
    n_windows = max(0, (n - window) // batch)
    for i in range(n_windows + 1):
        lo, hi = i * batch, (n if i == n_windows else window + i * batch)
        seg = e[lo:hi]
        flagged = widened(seg >= telemanom_epsilon(seg, buffer=buffer), buffer)
        new_from = 0 if i == 0 else window + (i - 1) * batch  # the previous window's end
        for a, b in telemanom_prune(seg, runs_of(flagged), flagged, p):
            out[max(lo + a, new_from):lo + b + 1] = True
    return out


def skab_flags(row_scores: np.ndarray, fitted_scores: np.ndarray, *, consensus: int, q: float = 0.999,
               margin: float = 4 / 3) -> np.ndarray:
    """Rows flagged by SKAB's rule. ``row_scores[i]`` is the score of the window ending at row i
    (NaN where no window ends); row i is flagged when ``row_scores[i:i + consensus]`` are all
    over the limit, so the last ``consensus - 1`` rows are never flagged."""
    limit = margin * float(np.quantile(np.asarray(fitted_scores, dtype=np.float64), q))
    above = np.nan_to_num(np.asarray(row_scores, dtype=np.float64), nan=-np.inf) > limit
    out = np.zeros(len(above), dtype=bool)
    if consensus < 1 or len(above) < consensus:
        return out
    full = np.convolve(above.astype(np.int64), np.ones(consensus, np.int64), mode="valid") == consensus
    out[:len(full)] = full
    return out
