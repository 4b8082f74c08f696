"""SKAB with a drift allowance calibrated on SKAB's anomaly-free recording (outside CI; an
experiment that did not work, kept so that its figures can be reproduced).

    .venv/bin/python benchmarks/skab_drift_allowance.py [--only skab-arima,skab-ae] [--threads 1]

Why: the product's gamma threshold is fitted on 80 held-out training rows, and the rig's
normal rows after them score higher (it drifts). The allowance asks known-normal operation
how much higher: ``anomaly-free/anomaly-free.csv`` (no labels, not part of the SKAB protocol)
is cut into 8 consecutive pseudo-runs, each goes through the SKAB per-run protocol as
``evaluate`` runs it, and the threshold scale ``c`` is the smallest of 1.00, 1.01, ... 5.00
whose pooled false-alarm rate over their scored rows is within 15 % (default hysteresis).
Every SKAB run's threshold is then multiplied by ``c``. The rule was written down before any
SKAB figure of it was computed. Result (2026-12-02): the recording drifts more than the
runs' test rows, so ``c`` overshoots and every scorer loses more detection than false alarms
(arima: F1 .784 -> .771, FAR 15.97 -> 8.14 %); see models/arima/README.md.
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from monitor.alerting import HysteresisSpec  # noqa: E402
from alerting_selection import alert_flags, counts, f1_far_mar  # noqa: E402
from monitor.evaluation.timeseries import SensorEvalOptions, evaluate_skab  # noqa: E402
from sensor_benchmarks import CONFIGS, DATA  # noqa: E402

PSEUDO_RUNS = 8
FAR_TARGET = 15.0
SCALES = np.round(np.arange(1.0, 5.0001, 0.01), 2)


def pseudo_runs(folder: Path) -> Path:
    """The anomaly-free recording as SKAB-shaped runs (all rows labelled normal)."""
    src = pd.read_csv(DATA / "SKAB" / "data" / "anomaly-free" / "anomaly-free.csv", sep=";")
    runs = folder / "data" / "other"
    runs.mkdir(parents=True, exist_ok=True)
    n = len(src) // PSEUDO_RUNS
    for i in range(PSEUDO_RUNS):
        part = src.iloc[i * n:(i + 1) * n].copy()
        part["anomaly"], part["changepoint"] = 0.0, 0.0
        part.to_csv(runs / f"{i}.csv", sep=";", index=False)
    return folder


def scored_runs(root: Path, opts: SensorEvalOptions) -> list[tuple]:
    """(windows, labels, n_train, threshold) of every run, through ``evaluate_skab`` itself."""
    out: list[tuple] = []

    def on_run(*, name, windows, labels, n_train, n_fit, threshold):
        out.append((windows, labels, n_train, threshold))

    evaluate_skab(root, opts, on_run=on_run)
    return out


def pooled(runs: list[tuple], scale: float) -> tuple[float, float, float]:
    total = np.zeros(4, dtype=np.int64)
    for windows, y, n_train, thr in runs:
        t = thr if scale == 1.0 else thr.with_value(thr.value * scale)
        total += counts(y[n_train:], alert_flags(windows, t, HysteresisSpec(), len(y))[n_train:])
    return f1_far_mar(total)


def run(name: str, normal_root: Path) -> dict:
    _, scorer, kw = CONFIGS[name]
    kw = dict(kw)
    opts = SensorEvalOptions(scorer=scorer, device="auto", params=kw.pop("params", {}), **kw)
    normal = scored_runs(normal_root, opts)
    chosen, normal_far = None, {}
    for c in SCALES:
        normal_far[float(c)] = pooled(normal, float(c))[1]
        if normal_far[float(c)] <= FAR_TARGET:
            chosen = float(c)
            break
    skab = scored_runs(DATA / "SKAB", opts)
    default = pooled(skab, 1.0)
    scaled = pooled(skab, chosen) if chosen is not None else None
    keys = ("f1", "far", "mar")
    return {"config": name, "scale": chosen, "normal_far_at_scale_1": normal_far[1.0],
            "normal_far_at_scale": normal_far.get(chosen),
            "skab_default": dict(zip(keys, default)), "skab_with_allowance": dict(zip(keys, scaled)) if scaled else None}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--only", help="comma-separated SKAB config names (default: all skab-*)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "sensors" / "drift_allowance.json"))
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    names = args.only.split(",") if args.only else [n for n, (p, _, _) in CONFIGS.items() if p == "skab"]
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        normal_root = pseudo_runs(Path(tmp))
        for name in names:
            res = run(name, normal_root)
            results.append(res)
            d, s = res["skab_default"], res["skab_with_allowance"]
            after = "no scale <= 5 reaches the target" if s is None else \
                f"F1 {s['f1']:.3f} FAR {s['far']:.2f} MAR {s['mar']:.2f}"
            print(f"| {name} | normal FAR {res['normal_far_at_scale_1']:.1f} % -> scale {res['scale']} | "
                  f"default F1 {d['f1']:.3f} FAR {d['far']:.2f} MAR {d['mar']:.2f} | with allowance {after} |",
                  flush=True)
    Path(args.out).write_text(json.dumps({"pseudo_runs": PSEUDO_RUNS, "far_target": FAR_TARGET,
                                          "results": results}, indent=2))


if __name__ == "__main__":
    main()
