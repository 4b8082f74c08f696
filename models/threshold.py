"""Decision thresholds fitted on normal window scores, kept apart from the scorers.

The default is a gamma fit (DESIGN §4.2) under one of two conventions:

- ``dcase``: shape, loc and scale free (``scipy.stats.gamma.fit``), threshold = ``ppf(0.9)``
  (the DCASE 2020/2021 baselines); a free-loc fit with shape <= 1 is degenerate and is
  refitted with loc = 0 (``_gamma_fit``; ``params`` keep the rejected shape and loc);
- ``paper``: loc fixed at 0, threshold = ``ppf(r)`` with r = 0.99 (the weakly-supervised
  autoencoder paper).

Scores that are exactly zero (a forecaster that predicts a clean periodic signal perfectly) get
a point mass of their own: a gamma has none at zero, and fitted on such scores it puts its tail
past the largest score. With a fraction ``p0`` of zeros (at least ``ZERO_MASS_MIN``, or any
under ``paper``, whose loc = 0 cannot take them) the gamma is fitted on the positive scores and
read at ``1 - (1 - q) / (1 - p0)``, so the overall false-alarm level stays ``1 - q``; when
zeros alone reach ``q``, any positive score is over the threshold.

Windows that overlap (a sensor window of several steps, one step apart) are not independent
draws: a k-of-n hysteresis then sees one excursion of their mean as several windows over, and
opens far more often than on independent windows at the same ``q``. Two answers are here:
``overlap_quantile`` gives the quantile that restores the rate at which the hysteresis opens on
independent windows (it raises the threshold itself); ``confirm_ratio`` keeps the threshold and
raises an event only once its peak stands ``PRUNE_P`` above it, telemanom's pruning rule for
smoothed errors (an excursion whose peak is within 13 % of the nominal scores' top is noise).

The other calibrators of the thresholds note (seeds/001) are here for comparison:
``percentile`` (empirical quantile), ``sigma`` (mean + k standard deviations), ``kde``
(Gaussian KDE tail quantile) and ``contamination`` (the quantile that flags a given rate).
"""
from __future__ import annotations

import itertools
import math
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from typing import Any

import numpy as np

from .errors import ThresholdError

METHODS = ("gamma", "percentile", "sigma", "kde", "contamination")
#: The gamma's quantile per convention (DESIGN §4.2): the DCASE baselines' and the paper's.
CONVENTIONS = {"dcase": 0.9, "paper": 0.99}
#: The quantile of the distribution-free methods (percentile, kde) unless one is given.
TAIL_Q = 0.99
#: Below this many scores a tail quantile is guesswork.
MIN_SCORES = 10
#: Fraction of exactly-zero scores from which the gamma gets a separate point mass at zero.
ZERO_MASS_MIN = 0.01
#: telemanom's minimum fractional drop from an anomalous sequence's peak error to the nominal
#: errors' top (Hundman et al. 2018, p = 0.13); ``confirm_ratio`` reads it for overlapping windows.
PRUNE_P = 0.13


@dataclass(frozen=True)
class Threshold:
    """A fitted threshold: its value, how it was fitted, and on what."""

    value: float
    method: str = "gamma"
    convention: str | None = "dcase"
    q: float | None = CONVENTIONS["dcase"]
    params: dict[str, float] = field(default_factory=dict)
    n_fit: int = 0
    fitted_on: str = "held-out normal windows"
    overridden: bool = False
    #: An event opens only once its peak reaches ``value * confirm`` (None or 1: at the
    #: threshold itself); set where the windows overlap (``confirm_ratio``).
    confirm: float | None = None

    def classify(self, score: float) -> bool:
        return score > self.value

    @property
    def confirm_level(self) -> float:
        """The peak score at which an excursion over the threshold becomes an event."""
        return self.value * self.confirm if self.confirm else self.value

    @property
    def spread(self) -> float:
        """Standard deviation of the fitted normal-score distribution (severity's unit)."""
        p = self.params
        if "a" in p:
            return math.sqrt(p["a"]) * p["scale"]
        return float(p.get("std", 0.0)) or abs(self.value) or 1.0

    def severity(self, peak: float) -> float:
        """How far ``peak`` lies past the threshold, in standard deviations of normal scores."""
        return (peak - self.value) / self.spread

    def with_value(self, value: float) -> "Threshold":
        """An override (config or CLI) keeps the fit for reference and says it is overridden."""
        if not math.isfinite(value):
            raise ThresholdError(f"threshold override must be finite, got {value}")
        d = asdict(self)
        d.update(value=float(value), overridden=True)
        return Threshold(**d)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Threshold":
        try:
            return cls(**d)
        except TypeError as exc:
            raise ThresholdError(f"invalid threshold record: {exc}") from None


def _clean(scores: Any) -> np.ndarray:
    s = np.asarray(scores, dtype=np.float64).ravel()
    if s.size < MIN_SCORES:
        raise ThresholdError(f"need at least {MIN_SCORES} normal scores to fit a threshold, got "
                             f"{s.size} (hold out more normal clips or use longer clips)")
    if not np.isfinite(s).all():
        raise ThresholdError(f"{int((~np.isfinite(s)).sum())} of {s.size} scores are NaN or inf")
    if np.ptp(s) <= 1e-12 * max(1.0, float(np.abs(s).max())):
        raise ThresholdError(f"all {s.size} scores are equal ({s[0]:.6g}); a constant input "
                             "cannot calibrate a threshold")
    return s


def fit_threshold(scores: Any, *, method: str = "gamma", convention: str = "dcase",
                  q: float | None = None, k: float = 3.0, rate: float = 0.01,
                  fitted_on: str = "held-out normal windows") -> Threshold:
    """Fit a threshold on normal scores computed exactly as live scores are."""
    s = _clean(scores)
    base = {"n_fit": int(s.size), "fitted_on": fitted_on}
    if method == "gamma":
        return _fit_gamma(s, convention=convention, q=q, **base)
    stats = {"mean": float(s.mean()), "std": float(s.std(ddof=1))}
    if method == "percentile":
        q = TAIL_Q if q is None else _check_q(q)
        return Threshold(float(np.quantile(s, q)), method, None, q, stats, **base)
    if method == "sigma":
        return Threshold(stats["mean"] + k * stats["std"], method, None, None,
                         {**stats, "k": float(k)}, **base)
    if method == "kde":
        q = TAIL_Q if q is None else _check_q(q)
        return Threshold(_kde_quantile(s, q), method, None, q, stats, **base)
    if method == "contamination":
        if not 0.0 < rate < 0.5:
            raise ThresholdError(f"contamination rate must lie in (0, 0.5), got {rate}")
        return Threshold(float(np.quantile(s, 1.0 - rate)), method, None, 1.0 - rate,
                         {**stats, "rate": float(rate)}, **base)
    raise ThresholdError(f"unknown threshold method {method!r}; known: {', '.join(METHODS)}")


def _check_q(q: float) -> float:
    if not 0.0 < q < 1.0:
        raise ThresholdError(f"quantile q must lie in (0, 1), got {q}")
    return float(q)


def _fit_gamma(s: np.ndarray, *, convention: str, q: float | None, **base: Any) -> Threshold:
    from scipy import stats  # noqa: PLC0415 - keep scoring imports light

    if convention not in CONVENTIONS:
        raise ThresholdError(f"unknown threshold convention {convention!r}; "
                             f"known: {', '.join(CONVENTIONS)}")
    q = _check_q(CONVENTIONS[convention] if q is None else q)
    if convention == "paper" and (s < 0).any():
        raise ThresholdError("the paper convention (loc = 0) needs scores >= 0")
    zero = np.abs(s) <= 1e-12 * float(np.abs(s).max())
    p0 = float(zero.mean())
    if p0 >= ZERO_MASS_MIN or (convention == "paper" and p0 > 0):
        return _fit_zero_inflated(s, zero, p0, convention=convention, q=q, **base)
    a, loc, scale, notes = _gamma_fit(s, convention)
    value = float(stats.gamma.ppf(q, a, loc=loc, scale=scale))
    return Threshold(value, "gamma", convention, q,
                     {"a": float(a), "loc": float(loc), "scale": float(scale), **notes}, **base)


def _gamma_fit(s: np.ndarray, convention: str) -> tuple[float, float, float, dict[str, float]]:
    """(a, loc, scale, notes). A free-loc fit whose shape comes out at or below 1 is refitted
    with loc = 0: for a <= 1 the three-parameter likelihood grows without bound as loc nears
    the smallest score, so the "MLE" is an artefact of that (seen on 80 SKAB hold-out scores
    of 1.06 +- 0.11: a = 0.60, loc = 0.71, ppf(0.99) = 5.5, four times the largest score)."""
    from scipy import stats  # noqa: PLC0415

    notes: dict[str, float] = {}
    if convention == "paper":
        a, loc, scale = stats.gamma.fit(s, floc=0.0)
    else:
        a, loc, scale = stats.gamma.fit(s)
        if math.isfinite(a) and a <= 1.0 and (s > 0).all():
            notes = {"free_loc_a": float(a), "free_loc": float(loc)}
            a, loc, scale = stats.gamma.fit(s, floc=0.0)
    if not all(map(math.isfinite, (a, loc, scale))) or a <= 0 or scale <= 0:
        raise ThresholdError(f"gamma fit failed on {s.size} scores (a={a}, loc={loc}, scale={scale})")
    return a, loc, scale, notes


def _fit_zero_inflated(s: np.ndarray, zero: np.ndarray, p0: float, *, convention: str, q: float,
                       **base: Any) -> Threshold:
    """Gamma on the positive scores plus a point mass ``p0`` at zero (module docstring)."""
    from scipy import stats  # noqa: PLC0415

    pos = s[~zero]
    if pos.size < MIN_SCORES:
        raise ThresholdError(f"{zero.sum()} of {s.size} scores are zero and only {pos.size} positive: "
                             f"need at least {MIN_SCORES} positive scores to fit the gamma's tail")
    if (pos <= 0).any():
        raise ThresholdError("scores below zero cannot be fitted with a zero-inflated gamma")
    a, loc, scale, notes = _gamma_fit(pos, convention)
    q_pos = 1.0 - (1.0 - q) / (1.0 - p0)
    value = float(stats.gamma.ppf(q_pos, a, loc=loc, scale=scale)) if q_pos > 0 else float(s[zero].max())
    return Threshold(value, "gamma", convention, q,
                     {"a": float(a), "loc": float(loc), "scale": float(scale), "p0": p0, **notes}, **base)


def _kde_quantile(s: np.ndarray, q: float) -> float:
    from scipy import stats  # noqa: PLC0415

    kde = stats.gaussian_kde(s)
    bw = float(np.sqrt(kde.covariance[0, 0]))
    grid = np.linspace(s.min() - 4 * bw, s.max() + 4 * bw, 4096)
    cdf = np.array([kde.integrate_box_1d(-np.inf, x) for x in grid])
    return float(np.interp(q, cdf, grid))


def gamma_pdf(x: np.ndarray, threshold: Threshold) -> np.ndarray | None:
    """The fitted gamma density at ``x`` (for plots), or None for other calibrators."""
    if threshold.method != "gamma":
        return None
    from scipy import stats  # noqa: PLC0415

    p = threshold.params
    return (1.0 - p.get("p0", 0.0)) * stats.gamma.pdf(x, p["a"], loc=p["loc"], scale=p["scale"])


def _onset_rate(z: float, lag_corr: tuple[float, ...], k: int, n: int) -> float:
    """Probability that a k-of-n rule opens at a given window, on stationary Gaussian window
    scores at level ``z`` with these correlations at lags 1..n: the patterns of n + 1
    consecutive windows whose first n hold fewer than k over and whose last n hold k or more."""
    from scipy import stats  # noqa: PLC0415

    d = n + 1
    corr = np.array([[1.0 if i == j else lag_corr[abs(i - j) - 1] for j in range(d)] for i in range(d)])
    total = 0.0
    for pattern in itertools.product((False, True), repeat=d):
        if not sum(pattern[:n]) < k <= sum(pattern[1:]):
            continue
        lo = np.array([z if over else -np.inf for over in pattern])
        hi = np.array([np.inf if over else z for over in pattern])
        total += float(stats.multivariate_normal.cdf(hi, mean=np.zeros(d), cov=corr, allow_singular=True,
                                                     lower_limit=lo, abseps=1e-8, releps=1e-3,
                                                     rng=np.random.default_rng(0)))
    return total


@lru_cache(maxsize=64)
def overlap_quantile(q: float, *, length: int, hop: int, k: int = 2, n: int = 3) -> float:
    """The quantile for windows of ``length`` steps ``hop`` apart at which a k-of-n hysteresis
    opens as often as it does at ``q`` on independent windows (``q`` itself when windows do
    not overlap).

    The one assumption is the one behind ``q`` for one-step windows: the per-step scores are
    independent. Then a window's score is the mean of ``length`` of them and windows ``j``
    hops apart share a fraction ``1 - j * hop / length`` of them, which is their correlation;
    the window scores are taken as Gaussian with that correlation (central limit over the
    steps) and the threshold is read from the fitted distribution at the quantile returned.
    Correlation the scorer itself puts between neighbouring steps is left alone, as it is for
    one-step windows."""
    from scipy import optimize, stats  # noqa: PLC0415

    q = _check_q(q)
    if not (length >= 1 and hop >= 1 and 1 <= k <= n):
        raise ThresholdError(f"overlap_quantile needs length, hop >= 1 and 1 <= k <= n, got "
                             f"{length}, {hop}, {k}, {n}")
    if hop >= length:
        return q
    lag_corr = tuple(max(0.0, 1.0 - j * hop / length) for j in range(1, n + 1))
    z0 = float(stats.norm.ppf(q))
    target = math.log(_onset_rate(z0, (0.0,) * n, k, n))
    gap = lambda z: math.log(max(_onset_rate(z, lag_corr, k, n), 1e-300)) - target  # noqa: E731
    if gap(z0) <= 0.0:  # overlap does not make this rule open more often
        return q
    hi = z0 + 1.0
    while gap(hi) > 0.0:
        hi += 1.0
    return float(stats.norm.cdf(optimize.brentq(gap, z0, hi, xtol=1e-6)))


def confirm_ratio(*, length: int, hop: int, p: float = PRUNE_P) -> float | None:
    """``Threshold.confirm`` for alerting windows of ``length`` steps ``hop`` apart: windows that
    overlap are smoothed scores, on which telemanom prunes every excursion whose peak is not
    ``p`` above the nominal top (here the threshold: ``peak * (1 - p) >= value``); None for
    windows that do not overlap, whose excursions are independent draws."""
    if not 0.0 <= p < 1.0:
        raise ThresholdError(f"the pruning fraction must lie in [0, 1), got {p}")
    return 1.0 / (1.0 - p) if hop < length and p > 0 else None
