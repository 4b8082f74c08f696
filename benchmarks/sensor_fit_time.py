"""Fit time of one NAB series per scorer with the defaults, on one torch thread.

    .venv/bin/python benchmarks/sensor_fit_time.py [--scorers tadgan,lstm] [--signals NAME,...]

Reports wall seconds and the process's CPU seconds (``time.process_time``) of the fit alone
(``build_sensor_model``: the rule, the windows, ``Scorer.fit``): on our shared 2-core machines
the wall time depends on the other users' load, the CPU time much less. Writes
``benchmarks/results/sensors/fit_time.json``.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from monitor.sources.csv_sensors import infer_step, read_sensor_csv  # noqa: E402
from monitor.training.sensors import build_sensor_model, grid_segments, sensor_defaults, sensor_spec  # noqa: E402

NAB = ROOT.parent / "shared" / "data" / "timeseries" / "NAB" / "data"
SIGNALS = ("artificialWithAnomaly/art_daily_jumpsup.csv", "realKnownCause/machine_temperature_system_failure.csv")


def fit_time(scorer: str, signal: str) -> dict:
    table = read_sensor_csv(NAB / signal, time_column="timestamp", channels=["value"], sort=True)
    step = infer_step(table.ts_s)
    seg = grid_segments(table, step_s=step, max_gap_s=1e12)[0]
    spec = sensor_spec([seg], channels=["value"], step_s=step, max_gap_s=1e12, time_column="timestamp")
    w0, c0 = time.perf_counter(), time.process_time()
    rule = sensor_defaults(scorer, [seg])
    _, fit = build_sensor_model(scorer=scorer, spec=spec, train=[seg], frames=rule["frames"], device="cpu",
                                train_stride=rule["train_stride"])
    return {"scorer": scorer, "signal": signal, "points": len(seg), "frames": rule["frames"],
            "train_stride": rule["train_stride"], "epochs": fit.epochs, "windows": fit.n_windows,
            "wall_seconds": round(time.perf_counter() - w0, 1), "cpu_seconds": round(time.process_time() - c0, 1)}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--scorers", default="tadgan,lstm,arima,conv-ae,ae")
    ap.add_argument("--signals", default=",".join(SIGNALS))
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "sensors" / "fit_time.json"))
    args = ap.parse_args()
    torch.set_num_threads(1)
    rows = []
    for signal in args.signals.split(","):
        for scorer in args.scorers.split(","):
            rows.append(fit_time(scorer, signal))
            print(json.dumps(rows[-1]), flush=True)
            Path(args.out).write_text(json.dumps({"threads": 1, "rows": rows}, indent=2))


if __name__ == "__main__":
    main()
