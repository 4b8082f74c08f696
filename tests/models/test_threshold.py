"""Gamma thresholds recover known distributions; degenerate inputs never give a threshold."""
from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from models.errors import ThresholdError
from models.threshold import METHODS, Threshold, fit_threshold, overlap_quantile


@pytest.fixture
def gamma_scores():
    return stats.gamma.rvs(4.0, loc=2.0, scale=0.5, size=20000, random_state=np.random.default_rng(0))


def test_dcase_convention_recovers_shape_loc_scale(gamma_scores):
    t = fit_threshold(gamma_scores, convention="dcase")
    assert t.params["a"] == pytest.approx(4.0, rel=0.1)
    assert t.params["loc"] == pytest.approx(2.0, abs=0.15)
    assert t.params["scale"] == pytest.approx(0.5, rel=0.1)
    assert t.q == 0.9
    assert t.value == pytest.approx(stats.gamma.ppf(0.9, 4.0, loc=2.0, scale=0.5), rel=0.01)


def test_paper_convention_fixes_loc_at_zero():
    s = stats.gamma.rvs(13.0, scale=0.2, size=20000, random_state=np.random.default_rng(1))
    t = fit_threshold(s, convention="paper")
    assert t.params["loc"] == 0.0 and t.q == 0.99
    assert t.params["a"] == pytest.approx(13.0, rel=0.05)
    assert t.value == pytest.approx(stats.gamma.ppf(0.99, 13.0, scale=0.2), rel=0.01)
    assert (s > t.value).mean() == pytest.approx(0.01, abs=0.003)


@pytest.mark.parametrize("convention", ["dcase", "paper"])
def test_exact_zeros_get_a_point_mass_and_keep_the_false_alarm_level(convention):
    """A perfect forecaster's scores: 90 % exact zeros. A plain gamma puts its 99 % point past
    every score; the zero-inflated fit keeps 1 % of all scores over the threshold."""
    rng = np.random.default_rng(2)
    pos = stats.gamma.rvs(3.0, scale=2.0, size=4000, random_state=rng)
    s = np.concatenate([np.zeros(36000), pos])
    t = fit_threshold(s, convention=convention, q=0.99)
    assert t.params["p0"] == pytest.approx(0.9)
    assert t.value == pytest.approx(stats.gamma.ppf(0.9, 3.0, scale=2.0), rel=0.05)
    assert (s > t.value).mean() == pytest.approx(0.01, abs=0.002)
    assert t.spread > 0 and Threshold.from_dict(t.to_dict()) == t


def test_zeros_beyond_q_flag_every_positive_score():
    s = np.concatenate([np.zeros(9950), np.linspace(1.0, 5.0, 50)])
    t = fit_threshold(s, convention="dcase", q=0.99)
    assert t.value == 0.0 and (s > t.value).sum() == 50


def test_a_few_zeros_leave_the_dcase_fit_alone(gamma_scores):
    s = np.concatenate([gamma_scores, np.zeros(20)])  # 0.1 % zeros
    assert "p0" not in fit_threshold(s, convention="dcase").params


@pytest.mark.parametrize("method", METHODS)
def test_every_calibrator_flags_roughly_its_tail(method, gamma_scores):
    t = fit_threshold(gamma_scores, method=method, q=0.95, rate=0.05)
    rate = (gamma_scores > t.value).mean()
    assert 0.0 < rate < 0.11, (method, rate)
    assert Threshold.from_dict(t.to_dict()) == t


@pytest.mark.parametrize("scores,match", [
    (np.ones(50), "all 50 scores are equal"),
    (np.arange(5.0), "at least 10"),
    (np.r_[np.arange(20.0), np.nan], "NaN or inf"),
])
def test_degenerate_inputs_raise(scores, match):
    with pytest.raises(ThresholdError, match=match):
        fit_threshold(scores)


def test_unknown_method_and_convention_are_named():
    with pytest.raises(ThresholdError, match="unknown threshold method 'x'"):
        fit_threshold(np.arange(20.0) + 1, method="x")
    with pytest.raises(ThresholdError, match="unknown threshold convention 'y'"):
        fit_threshold(np.arange(20.0) + 1, convention="y")


def test_override_and_severity(gamma_scores):
    t = fit_threshold(gamma_scores)
    o = t.with_value(10.0)
    assert o.overridden and o.value == 10.0 and o.params == t.params
    assert t.severity(t.value) == 0.0 and t.severity(t.value + t.spread) == pytest.approx(1.0)
    assert t.classify(t.value + 1e-9) and not t.classify(t.value)


def test_a_degenerate_free_loc_fit_falls_back_to_loc_zero():
    """80 narrow, left-skewed scores around 1.1 (like a forecaster's hold-out rows): scipy's
    free-loc MLE runs off to a < 1 with loc near the smallest score and put its 99 % point at
    four times the largest score. The fallback (loc = 0) keeps it near the scores' own tail."""
    s = 1.3 - stats.gamma.rvs(2.0, scale=0.08, size=80, random_state=np.random.default_rng(0))
    free_a, free_loc, free_scale = stats.gamma.fit(s)
    assert free_a < 1.0 and stats.gamma.ppf(0.99, free_a, free_loc, free_scale) > 3 * s.max()
    t = fit_threshold(s, convention="dcase", q=0.99)
    assert t.params["free_loc_a"] == pytest.approx(free_a) and t.params["loc"] == 0.0
    a0, _, scale0 = stats.gamma.fit(s, floc=0.0)
    assert t.value == pytest.approx(stats.gamma.ppf(0.99, a0, scale=scale0), rel=1e-6)
    assert s.max() < t.value < 1.2 * s.max()


def test_a_regular_free_loc_fit_is_kept(gamma_scores):
    assert "free_loc_a" not in fit_threshold(gamma_scores, convention="dcase").params


def test_overlap_quantile_is_q_without_overlap_and_higher_with_it():
    assert overlap_quantile(0.99, length=1, hop=1) == 0.99
    assert overlap_quantile(0.99, length=10, hop=10) == 0.99  # windows side by side
    half = overlap_quantile(0.99, length=10, hop=5)
    most = overlap_quantile(0.99, length=10, hop=1)
    assert 0.99 < half < 1.0 and 0.99 < most < 1.0
    # one window over opens: correlated windows cross the level less often, so q stays
    assert overlap_quantile(0.99, length=10, hop=1, k=1, n=1) == 0.99
    with pytest.raises(ThresholdError, match="length, hop"):
        overlap_quantile(0.99, length=0, hop=1)


def test_confirm_ratio_only_for_overlapping_windows():
    from models.threshold import PRUNE_P, confirm_ratio
    assert confirm_ratio(length=40, hop=1) == pytest.approx(1 / (1 - PRUNE_P))
    assert confirm_ratio(length=1, hop=1) is None and confirm_ratio(length=10, hop=10) is None
    assert confirm_ratio(length=40, hop=1, p=0.0) is None
    with pytest.raises(ThresholdError):
        confirm_ratio(length=40, hop=1, p=1.0)


def test_confirm_level_and_records_without_it():
    t = Threshold(2.0, confirm=1.25)
    assert t.confirm_level == 2.5 and Threshold(2.0).confirm_level == 2.0
    assert Threshold.from_dict(t.to_dict()) == t
    old = {k: v for k, v in Threshold(2.0).to_dict().items() if k != "confirm"}  # a model saved before the field
    assert Threshold.from_dict(old).confirm is None
    assert t.with_value(3.0).confirm_level == 3.75  # an override keeps the ratio
