"""The anchors' decision rules (Orion's, telemanom's, SKAB's), run beside the product's alerting."""
from __future__ import annotations

import numpy as np

from monitor.evaluation.anchor_rules import (intervals, orion_flags, runs_of, skab_flags, telemanom_epsilon, telemanom_flags,
                                  telemanom_prune, widened)


def _noise(n: int, seed: int = 0) -> np.ndarray:
    return np.abs(np.random.default_rng(seed).normal(size=n))


def test_orion_rule_flags_a_burst():
    s = _noise(600) * 0.1
    s[300:305] += 5.0
    got = intervals(orion_flags(s), np.arange(600.0))
    assert (300.0, 304.0) in got and all(b - a < 10 for a, b in got)


def test_runs_and_widening():
    m = np.zeros(12, dtype=bool)
    m[[2, 3, 9]] = True
    assert runs_of(m) == [(2, 3), (9, 9)]
    assert runs_of(widened(m, 1)) == [(1, 4), (8, 10)]
    assert runs_of(widened(m, 0)) == runs_of(m)


def test_epsilon_sits_between_the_noise_and_a_burst():
    e = _noise(2000)
    e[1000:1010] += 10.0
    eps = telemanom_epsilon(e)
    assert e[1000:1010].min() >= eps > np.delete(e, range(1000, 1010)).max()


def test_epsilon_refuses_candidates_that_flag_half_the_window():
    # every candidate's buffered points cover the window: the most conservative one is kept
    e = _noise(300)
    e[::20] += 10.0
    assert telemanom_epsilon(e) == e.mean() + 11.5 * e.std()


def test_pruning_keeps_peaks_down_to_the_last_clear_drop():
    e = np.zeros(100)
    e[10], e[30], e[50], e[70] = 10.0, 9.5, 5.0, 4.8  # 4.8 is the largest unflagged error
    seqs = [(9, 11), (29, 31), (49, 51)]
    flagged = np.zeros(100, dtype=bool)
    for a, b in seqs:
        flagged[a:b + 1] = True
    # drops 10 -> 9.5 (5 %), 9.5 -> 5 (47 %), 5 -> 4.8 (4 %): the two largest stay
    assert telemanom_prune(e, seqs, flagged, 0.13) == [(9, 11), (29, 31)]
    e[70] = 1.0  # now 5 -> 1 is a clear drop too: all three stay
    assert telemanom_prune(e, seqs, flagged, 0.13) == seqs


def test_flags_a_burst_in_a_long_series_and_nothing_in_the_windows_that_see_it():
    e = _noise(6000, seed=1)
    e[4000:4020] += 8.0
    flags = telemanom_flags(e)
    assert flags[4000:4020].all()
    # the windows holding the burst measure the noise against it: their new points are clean
    # (windows of pure noise do flag their own largest values: the rule has no scale check)
    assert not flags[4120:].any()
    # decided online: a window only decides its newest points, so nothing before the burst
    # is flagged by windows that saw the burst later
    first = runs_of(flags[3800:4200])[0][0] + 3800
    assert 3900 <= first <= 4000


def test_short_series_is_one_window():
    e = _noise(600)
    e[300:310] += 8.0
    assert runs_of(telemanom_flags(e)) == [(200, 409)]


def test_skab_rule_needs_every_window_of_a_row_over_the_limit():
    fitted = np.linspace(0.0, 1.0, 1001)  # 0.999 quantile 0.999, limit 4/3 of it
    rows = np.full(40, 0.5)
    rows[:3] = np.nan  # no window ends in the first rows
    rows[10:25] = 2.0  # 15 windows over the limit
    rows[30] = 2.0     # one lone window: not enough
    flags = skab_flags(rows, fitted, consensus=5)
    # row i needs windows i..i+4 over: rows 10..20
    assert runs_of(flags) == [(10, 20)]
    # a window under 4/3 of the quantile (1.2 < 1.332) counts as normal
    assert not skab_flags(np.full(20, 1.2), fitted, consensus=3).any()
    assert not skab_flags(np.full(4, 2.0), fitted, consensus=5).any()  # shorter than the consensus
