"""SKAB / NAB metric code: Orion's overlap segments and SKAB's pooled point metrics."""
from __future__ import annotations

import numpy as np
import pytest

from monitor.evaluation.timeseries import flags_from_events, overlap_segment_counts, point_metrics


def test_overlap_segments_count_like_orion():
    truth = [(10, 20), (50, 60), (90, 95)]
    found = [(0, 5), (12, 13), (18, 30), (58, 70), (80, 85)]
    c = overlap_segment_counts(truth, found)
    # (10,20) and (50,60) found; (90,95) missed; (0,5) and (80,85) overlap nothing
    assert c == {"tp": 2, "fp": 2, "fn": 1}
    assert overlap_segment_counts(truth, []) == {"tp": 0, "fp": 0, "fn": 3}
    assert overlap_segment_counts([], [(1, 2)]) == {"tp": 0, "fp": 1, "fn": 0}
    assert overlap_segment_counts([(10, 20)], [(20, 25)]) == {"tp": 1, "fp": 0, "fn": 0}  # touching


def test_point_metrics_far_mar_in_percent():
    m = point_metrics({"tp": 30, "fp": 10, "fn": 20, "tn": 90})
    assert m["precision"] == pytest.approx(0.75) and m["recall"] == pytest.approx(0.6)
    assert m["f1"] == pytest.approx(2 * 0.75 * 0.6 / 1.35)
    assert m["far"] == pytest.approx(10.0) and m["mar"] == pytest.approx(40.0)
    assert point_metrics({"tp": 0, "fp": 0, "fn": 5, "tn": 5})["f1"] == 0.0


def test_flags_from_events_cover_half_open_spans():
    ev = [{"start_sample": 2, "end_sample": 4}, {"start_sample": 8, "end_sample": 20}]
    np.testing.assert_array_equal(flags_from_events(ev, 10).nonzero()[0], [2, 3, 8, 9])


def test_nab_evaluates_any_subset_folder_of_a_nab_layout_root(tmp_path):
    """A user's own data laid out as NAB (data/<subset>/*.csv + labels) is evaluated whatever
    the subset folder's name; a missing one is named with the folders that exist."""
    import json

    from models.threshold import PRUNE_P
    from monitor.errors import DataError
    from monitor.evaluation.timeseries import SensorEvalOptions, evaluate_nab

    rng = np.random.default_rng(0)
    n = 600
    t = np.arange(n)
    x = np.sin(2 * np.pi * t / 50) + 0.05 * rng.standard_normal(n)
    x[450:470] += 4.0
    stamps = [f"2024-01-01 {h:02d}:{m:02d}:00" for h, m in ((i * 5 // 60 % 24, i * 5 % 60) for i in t)]
    stamps = [f"2024-01-{1 + i * 5 // 1440:02d} {s[11:]}" for i, s in enumerate(stamps)]
    (tmp_path / "data" / "pumpHall").mkdir(parents=True)
    (tmp_path / "labels").mkdir()
    lines = ["timestamp,value"] + [f"{s},{v:.5f}" for s, v in zip(stamps, x)]
    (tmp_path / "data" / "pumpHall" / "pump1.csv").write_text("\n".join(lines) + "\n")
    label = [[stamps[440] + ".000000", stamps[480] + ".000000"]]
    (tmp_path / "labels" / "combined_windows.json").write_text(json.dumps({"pumpHall/pump1.csv": label}))
    res = evaluate_nab(tmp_path, "pumpHall", SensorEvalOptions(scorer="arima", device="cpu"))
    assert res["subset"] == "pumpHall" and res["signals"] == 1
    row = res["rows"][0]  # the alerting window is 1 % of the signal, one step apart
    assert (row["window_steps"], row["hop_steps"], row["threshold_q"]) == (6, 1, 0.99)
    # overlapping windows: an event needs a peak 1 / (1 - 0.13) x the threshold; the fault has it
    assert row["confirm_level"] == pytest.approx(row["threshold"] / (1 - PRUNE_P)) and row["tp"] == 1
    plain = evaluate_nab(tmp_path, "pumpHall", SensorEvalOptions(scorer="arima", device="cpu", confirm=False))
    assert plain["rows"][0]["confirm_level"] == plain["rows"][0]["threshold"] == row["threshold"]
    assert plain["rows"][0]["detected"] >= row["detected"]
    over = evaluate_nab(tmp_path, "pumpHall", SensorEvalOptions(scorer="arima", device="cpu", overlap_q=True))
    assert over["rows"][0]["threshold_q"] > 0.99 and over["rows"][0]["threshold"] > row["threshold"]
    with pytest.raises(DataError, match="found: pumpHall"):
        evaluate_nab(tmp_path, "realKnownCause", SensorEvalOptions(scorer="arima", device="cpu"))


def test_rewindow_gives_the_live_pipelines_windows_at_another_hop():
    """The NAB anchors' rules read windows one step apart while the product's alerting hops half
    a window: ``rewindow`` rebuilds the one-step windows from the vector scores of the live run,
    equal to what the live pipeline gives with that hop."""
    from monitor.alerting import HysteresisSpec
    from monitor.evaluation.timeseries import _detect, rewindow
    from models.threshold import fit_threshold
    from monitor.training.sensors import build_sensor_model, sensor_spec

    rng = np.random.default_rng(1)
    x = (np.sin(np.arange(500) * 2 * np.pi / 40) + 0.1 * rng.standard_normal(500)).astype(np.float32)[:, None]
    spec = sensor_spec([x], channels=["value"], step_s=60.0, max_gap_s=1e12, time_column="timestamp")
    runs = {}
    for hop in (1, 4):
        model, _ = build_sensor_model(scorer="arima", spec=spec, train=[x], frames=30, window_steps=8,
                                      hop_steps=hop, device="cpu")
        model.threshold = fit_threshold(rng.gamma(4.0, size=50))
        runs[hop] = (model, *_detect(model, x, "s", HysteresisSpec(), 1 / 60.0, with_vectors=True))
    model4, _, wins4, vectors4 = runs[4]
    _, _, wins1, vectors1 = runs[1]
    np.testing.assert_array_equal(vectors4, vectors1)
    again1 = rewindow(model4, vectors4, 1)
    assert [(w.start_sample, w.end_sample) for w in again1] == [(w.start_sample, w.end_sample) for w in wins1]
    np.testing.assert_array_equal([w.score for w in again1], [w.score for w in wins1])
    again4 = rewindow(model4, vectors4, 4)
    np.testing.assert_array_equal([w.score for w in again4], [w.score for w in wins4])
    assert {w.start_sample % 4 for w in wins4} == {0} and len(wins4) < len(wins1)


def test_overlapping_windows_at_the_overlap_quantile_open_as_often_as_independent_ones():
    """The product's hysteresis on independent per-step scores: one-step windows at q, and
    10-step windows one step apart (90 % shared) at ``overlap_quantile``, open about equally
    often; the 10-step windows at q itself open several times as often."""
    from scipy import stats

    from models.threshold import overlap_quantile
    from monitor.alerting import Hysteresis, HysteresisSpec

    def opened(scores: np.ndarray, level: float) -> int:
        h = Hysteresis(HysteresisSpec())
        return sum(h.update(bool(v)) == "open" for v in scores > level)

    q, length, n = 0.99, 10, 300_000
    x = np.random.default_rng(0).standard_normal(n + length - 1)
    means = np.convolve(x, np.ones(length) / length, mode="valid")  # sd 1/sqrt(length)
    q_overlap = overlap_quantile(q, length=length, hop=1)
    one_step = opened(x[:n], stats.norm.ppf(q))
    at_overlap_q = opened(means, stats.norm.ppf(q_overlap) / np.sqrt(length))
    at_q = opened(means, stats.norm.ppf(q) / np.sqrt(length))
    assert 0.99 < q_overlap < 1.0 and one_step > 30
    assert 0.6 < at_overlap_q / one_step < 1.6
    assert at_q > 3 * one_step


def test_white_noise_excursions_are_not_confirmed_but_a_fault_is():
    """Windows of 40 steps one step apart over white noise: at q 0.99 (fitted on the noise)
    their mean crosses the threshold in small excursions; with the confirmation level none becomes an event, while
    a level shift of 1.5 sigma over 60 steps still does. Seeded, ARIMA-like scores (|z|)."""
    from models.threshold import PRUNE_P, Threshold, confirm_ratio, fit_threshold
    from monitor.alerting import AlertContext, StreamAlerts
    from workers.windowing import WindowScore

    rng = np.random.default_rng(3)
    steps = np.abs(rng.standard_normal(4000))
    steps[3000:3060] = np.abs(rng.standard_normal(60) + 1.5)
    means = np.convolve(steps, np.ones(40) / 40, mode="valid")
    fit = fit_threshold(means[:2900], q=0.99)  # fitted on the normal part, as on held-out rows

    def events(thr: Threshold):
        alerts = StreamAlerts(AlertContext("s", "arima", "v1", 1), thr)
        out = [e for i, v in enumerate(means) for e in alerts.update(WindowScore("s", i, i, i + 40, float(v), 1))]
        return [e for e in out + alerts.finish() if e["status"] == "closed"]

    plain = events(fit)
    confirmed = events(Threshold(fit.value, params=fit.params, confirm=confirm_ratio(length=40, hop=1)))
    assert len(plain) >= 3  # noise excursions and the fault
    assert [(e["start_sample"] <= 3060 and e["end_sample"] >= 3000) for e in confirmed] == [True]
    assert confirmed[0]["peak_score"] >= fit.value / (1 - PRUNE_P)
