"""Reduced SKAB / NAB runs through ``monitor evaluate``: the machinery, not the figures.

Two SKAB runs and one or two NAB signals, every scorer with few epochs; the full runs are
``benchmarks/sensor_benchmarks.py``.
"""
from __future__ import annotations

import json

import pytest

from tests.conftest import shared_data

pytestmark = pytest.mark.slow

SMOKE = {
    "arima": [],
    "ae": ["--frames", "10", "--epochs", "5"],
    "conv-ae": ["--frames", "20", "--epochs", "2"],
    "lstm": ["--frames", "40", "--epochs", "2", "--param", "hidden=16", "--param", "context=20"],
    "tadgan": ["--frames", "30", "--epochs", "1", "--param", "encoder_units=16",
               "--param", "generator_units=16"],
}


def _evaluate(capsys, args: list[str]) -> dict:
    from monitor.cli import main

    rc = main(["evaluate", *args, "--format", "json", "--device", "cpu"])
    out = capsys.readouterr().out
    assert rc == 0
    return json.loads(out)


@pytest.mark.parametrize("scorer", sorted(SMOKE))
def test_skab_protocol_smoke(scorer, capsys):
    data = shared_data("timeseries", "SKAB")
    res = _evaluate(capsys, ["--protocol", "skab", "--data", str(data), "--scorer", scorer,
                             "--limit", "2", *SMOKE[scorer]])
    assert res["protocol"] == "skab" and res["scorer"] == scorer and res["runs"] == 2
    for key in ("f1", "precision", "recall"):
        assert 0.0 <= res[key] <= 1.0
    assert 0.0 <= res["far"] <= 100.0 and 0.0 <= res["mar"] <= 100.0
    rows = res["rows"]
    assert [r["run"] for r in rows] == ["valve1/0", "valve1/1"]
    # counts cover exactly the test points (all rows after the first 400) of both runs
    assert res["tp"] + res["fp"] + res["fn"] + res["tn"] == sum(r["test_points"] for r in rows)
    assert sum(r["anomalies"] for r in rows) == res["tp"] + res["fn"]
    assert all(r["threshold"] > 0 for r in rows)
    # the anchors' rules decide the same test points, reported beside ours
    for rule in ("anchor_rule", "telemanom_rule", "skab_rule"):
        a = res[rule]
        assert a["tp"] + a["fp"] + a["fn"] + a["tn"] == res["tp"] + res["fp"] + res["fn"] + res["tn"]
        assert a["rule"] and 0.0 <= a["f1"] <= 1.0


@pytest.mark.parametrize("scorer", ["arima", "ae"])
def test_nab_protocol_smoke(scorer, capsys):
    data = shared_data("timeseries", "NAB")
    res = _evaluate(capsys, ["--protocol", "nab", "--data", str(data), "--subset", "artificialWithAnomaly",
                             "--scorer", scorer, "--limit", "1", "--train-stride", "8", *SMOKE[scorer]])
    assert res["protocol"] == "nab" and res["signals"] == 1
    row = res["rows"][0]
    assert row["signal"] == "artificialWithAnomaly/art_daily_flatmiddle.csv" and row["true_intervals"] == 1
    assert row["tp"] + row["fn"] == 1 and row["fp"] <= row["detected"]
    for rule in ("anchor_rule", "telemanom_rule"):
        assert row[rule]["tp"] + row[rule]["fn"] == 1 and row[rule]["fp"] <= row[rule]["detected"]
    assert res["published_orion_artificial"]["tadgan"] == 0.5
    assert res["anchor_rule"]["tp"] + res["anchor_rule"]["fn"] == 1
