"""Alerting settings chosen by leave-one-group-out: each group decided by a setting chosen on
the other groups only, and decisions re-run through the product's alerting stage."""
from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from models.threshold import Threshold
from monitor.alerting import HysteresisSpec
from alerting_selection import AlertSetting, alert_flags, choose, counts, f1_far_mar, leave_one_group_out
from workers.windowing import WindowScore

LOOSE = AlertSetting(0.99, HysteresisSpec(2, 3, 3))
STRICT = AlertSetting(0.999, HysteresisSpec(3, 5, 5))


def _windows(scores):
    return [WindowScore("s", i, i, i + 1, float(v), 1) for i, v in enumerate(scores)]


def test_alert_flags_mark_rows_from_first_to_last_window_over_the_threshold():
    scores = [0, 0, 5, 5, 0, 5, 0, 0, 0, 0, 5, 0, 0, 0]  # one event 2..5; a lone 5 opens none
    flags = alert_flags(_windows(scores), Threshold(1.0), HysteresisSpec(2, 3, 3), len(scores))
    assert np.flatnonzero(flags).tolist() == [2, 3, 4, 5]


def test_an_event_still_open_at_the_end_is_closed_and_counted():
    flags = alert_flags(_windows([0, 5, 5, 5]), Threshold(1.0), HysteresisSpec(2, 3, 3), 4)
    assert flags.tolist() == [False, True, True, True]


def test_counts_and_rates():
    c = counts(np.array([1, 1, 0, 0, 1], bool), np.array([1, 0, 1, 0, 1], bool))
    assert c.tolist() == [2, 1, 1, 1]
    f1, far, mar = f1_far_mar(c)
    assert f1 == pytest.approx(2 / 3) and far == pytest.approx(50.0) and mar == pytest.approx(100 / 3)


def test_choose_prefers_f1_within_the_false_alarm_limit_else_the_fewest_false_alarms():
    loud = np.array([90, 40, 10, 60])   # F1 .75, FAR 40 %
    quiet = np.array([70, 5, 30, 95])   # F1 .78, FAR 5 %
    assert choose({LOOSE: loud, STRICT: quiet}, far_limit=15) == STRICT
    assert choose({LOOSE: loud, STRICT: np.array([80, 30, 20, 70])}, far_limit=15) == STRICT  # 30 < 40 %
    assert choose({LOOSE: np.array([90, 10, 10, 90]), STRICT: quiet}, far_limit=15) == LOOSE


def test_each_group_is_decided_by_the_setting_chosen_on_the_others():
    # groups a and b reward the strict setting, c rewards the loose one: c gets strict anyway
    good, bad = np.array([80, 5, 20, 95]), np.array([60, 40, 40, 60])
    per_run = {"a/1": {LOOSE: bad, STRICT: good}, "b/1": {LOOSE: bad, STRICT: good},
               "c/1": {LOOSE: good, STRICT: bad}, "c/2": {LOOSE: good, STRICT: bad}}
    group_of = {r: r.split("/")[0] for r in per_run}
    res = leave_one_group_out(per_run, group_of, far_limit=15)
    # for a, the others (b: strict good; c: loose good twice) pool to loose = 2 good + 1 bad
    assert [res["groups"][g]["chosen"] for g in "abc"] == [LOOSE.label, LOOSE.label, STRICT.label]
    assert res["groups"]["c"]["runs"] == 2
    assert res["groups"]["c"]["held_out"]["f1"] == pytest.approx(f1_far_mar(2 * bad)[0])
    total = bad + bad + bad + bad  # every group decided by the setting that is wrong for it
    assert [res["tp"], res["fp"], res["fn"], res["tn"]] == total.tolist()
    assert res["f1"] == pytest.approx(f1_far_mar(total)[0])


def test_one_group_cannot_be_cross_validated():
    with pytest.raises(ValueError, match="two groups"):
        leave_one_group_out({"a/1": {LOOSE: np.zeros(4)}}, {"a/1": "a"}, far_limit=15)


def test_configurations_are_chosen_like_settings_and_named_in_the_label():
    """skab_alerting_cv --joint: the same setting from two scorer configurations are two candidates."""
    good, bad = np.array([80, 5, 20, 95]), np.array([60, 40, 40, 60])
    mean, mewma = replace(STRICT, config="skab-arima"), replace(STRICT, config="skab-arima-mewma")
    assert mean != mewma and mewma.label == f"skab-arima-mewma {STRICT.label}"
    per_run = {"a/1": {mean: bad, mewma: good}, "b/1": {mean: bad, mewma: good}, "c/1": {mean: good, mewma: bad}}
    res = leave_one_group_out(per_run, {r: r[0] for r in per_run}, far_limit=15)
    assert res["groups"]["c"]["chosen"] == mewma.label  # chosen on a and b, wrong for c
    assert res["groups"]["a"]["chosen"] == res["groups"]["b"]["chosen"] == mean.label  # ties: the first
