"""Alerting rules for NAB's overlapping windows, compared on the same fits (outside CI).

    .venv/bin/python benchmarks/sensor_alerting_rules.py --scorers arima,lstm,tadgan \
        [--cache /tmp/nab-window-scores] [--out benchmarks/results/sensors/alerting_rules]

Each scorer is fitted once per NAB series with its defaults (``monitor evaluate --protocol nab``
without flags: whole signal, alerting windows of 1 % of it one step apart) and the window scores
are kept in ``--cache``; every rule then decides on those scores through the product's alerting
stage (``StreamAlerts``), so a rule's row differs from another's only by the decision. The rules
were written down before any of them was run on a labelled subset:

- ``q``: the gamma at q 0.99, 2 of 3 windows open, 3 under close (the alerting before);
- ``overlap-q``: the gamma at ``overlap_quantile`` (0.9987 for windows of 40 steps);
- ``merge``: ``q``, closing only after a whole window length under (re-crossings of one excursion
  are one event);
- ``confirm``: ``q``, an event raised once its peak is 1 / (1 - 0.13) x the threshold
  (telemanom's pruning; ``models.threshold.confirm_ratio``, now the default);
- ``confirm+merge`` and ``overlap-q-confirm``: the combinations.

A second table lists, per series, every event under ``q`` with its peak over the threshold, its
length in windows and whether it overlaps a labelled anomaly: where the rules' trade comes from.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from models.threshold import Threshold, confirm_ratio, fit_threshold, overlap_quantile  # noqa: E402
from monitor.alerting import AlertContext, HysteresisSpec, StreamAlerts  # noqa: E402
from monitor.errors import ThresholdError  # noqa: E402
from monitor.evaluation.timeseries import _detect, _nab_root, _to_seconds, overlap_segment_counts  # noqa: E402
from monitor.sources.csv_sensors import infer_step, read_sensor_csv  # noqa: E402
from monitor.training.sensors import (build_sensor_model, fit_sensor_threshold, grid_segments,  # noqa: E402
                                      sensor_defaults, sensor_spec)
from workers.windowing import WindowScore  # noqa: E402

DATA = ROOT.parent / "shared" / "data" / "timeseries" / "NAB"
SUBSETS = ("artificialWithAnomaly", "realKnownCause", "artificialNoAnomaly")
RULES = ("q", "overlap-q", "merge", "confirm", "confirm+merge", "overlap-q-confirm")
Q = 0.99


def fit_default(scorer: str, path: Path):
    """``scorer``'s default fit on one NAB series, as ``evaluate --protocol nab`` makes it with no
    flags: (model without a threshold, the gridded series, its table, the chosen settings)."""
    table = read_sensor_csv(path, time_column="timestamp", channels=["value"], sort=True)
    step = infer_step(table.ts_s)
    seg = grid_segments(table, step_s=step, max_gap_s=1e12)[0]
    spec = sensor_spec([seg], channels=["value"], step_s=step, max_gap_s=1e12, time_column="timestamp")
    chosen = sensor_defaults(scorer, [seg], frames=None, train_stride=None)
    model, _ = build_sensor_model(scorer=scorer, spec=spec, train=[seg], frames=chosen["frames"],
                                  window_steps=max(1, round(0.01 * len(seg))), hop_steps=1, seed=0,
                                  device="cpu", train_stride=chosen["train_stride"])
    return model, seg, table, chosen


def cache_scores(scorer: str, subset: str, path: Path, dst: Path) -> None:
    """Fit ``scorer``'s defaults on one series and keep its one-step window scores."""
    model, seg, table, _ = fit_default(scorer, path)
    step = infer_step(table.ts_s)
    wsteps, _ = model.window.samples(model.frontend.sample_rate)
    labels = json.loads((_nab_root(DATA) / "labels" / "combined_windows.json").read_text())
    truth = np.array([(_to_seconds(a), _to_seconds(b)) for a, b in labels[f"{subset}/{path.name}"]]).reshape(-1, 2)
    try:
        model.threshold = fit_sensor_threshold(model, [seg], [0], q=Q, confirm=False)
    except ThresholdError as exc:  # a constant signal: no model, no event
        np.savez(dst, untrainable=str(exc), truth=truth)
        return
    _, wins = _detect(model, seg, path.stem, HysteresisSpec(), 1.0 / step, float(table.ts_s[0]))
    np.savez(dst, score=[w.score for w in wins], start=[w.start_sample for w in wins],
             end=[w.end_sample for w in wins], origin=float(table.ts_s[0]), step=step, wsteps=wsteps, truth=truth)


def decide(rule: str, scores: np.ndarray, length: int) -> tuple[Threshold, HysteresisSpec]:
    at_q = fit_threshold(scores, q=Q)
    spec = HysteresisSpec(m=length) if "merge" in rule else HysteresisSpec()
    thr = fit_threshold(scores, q=overlap_quantile(Q, length=length, hop=1)) if rule.startswith("overlap-q") else at_q
    ratio = confirm_ratio(length=length, hop=1) if "confirm" in rule else None
    return Threshold(thr.value, params=thr.params, q=thr.q, confirm=ratio), spec


def events(d, rule: str) -> list[dict]:
    """Closed machine events of one cached series under ``rule``, through ``StreamAlerts``."""
    scores = d["score"]
    thr, spec = decide(rule, scores, int(d["wsteps"]))
    alerts = StreamAlerts(AlertContext("nab", "any", "cached", sample_rate=1), thr, spec)
    out = []
    for i, (s, a, b) in enumerate(zip(scores, d["start"], d["end"])):
        out += alerts.update(WindowScore("nab", i, int(a), int(b), float(s), 1))
    return [e for e in out + alerts.finish() if e["status"] == "closed"]


def _truth(d) -> list[tuple[float, float]]:
    return [tuple(t) for t in d["truth"]] if "truth" in d else []


def spans_s(d, evs: list[dict]) -> list[tuple[float, float]]:
    o, step = float(d["origin"]), float(d["step"])
    return [(o + e["start_sample"] * step, o + e["end_sample"] * step) for e in evs]


def table(cache: Path, scorer: str) -> tuple[list[str], dict]:
    lines, out = [], {}
    for rule in RULES:
        row = {}
        for subset in SUBSETS:
            tot, per = {"tp": 0, "fp": 0, "fn": 0}, []
            for f in sorted((cache / scorer).glob(f"{subset}__*.npz")):
                d = np.load(f)
                found = [] if "untrainable" in d else spans_s(d, events(d, rule))
                c = overlap_segment_counts(_truth(d), found)
                tot = {k: tot[k] + c[k] for k in tot}
                per.append(len(found))
            f1 = 2 * tot["tp"] / (2 * tot["tp"] + tot["fp"] + tot["fn"]) if tot["tp"] else 0.0
            row[subset] = {**tot, "f1": round(f1, 3), "events_per_series": per}
        out[rule] = row
        a, r, q = (row[s] for s in SUBSETS)
        lines.append(f"| {scorer} | {rule} | {a['f1']:.3f} ({a['tp']}/{a['fp']}/{a['fn']}) | "
                     f"{r['f1']:.3f} ({r['tp']}/{r['fp']}/{r['fn']}) | {q['events_per_series']} |")
    return lines, out


def peaks(cache: Path, scorer: str) -> list[str]:
    lines = []
    for f in sorted((cache / scorer).glob("*.npz")):
        d = np.load(f)
        if "untrainable" in d:
            continue
        thr = fit_threshold(d["score"], q=Q).value
        truth, evs = _truth(d), events(d, "q")
        cells = []
        for e, span in zip(evs, spans_s(d, evs)):
            hit = bool(truth) and overlap_segment_counts(truth, [span])["fp"] == 0
            cells.append(f"{'**found**' if hit else 'false'} {e['peak_score'] / thr:.3f}x, {e['windows']} w")
        lines.append(f"| {scorer} | {f.stem.replace('__', '/')} | {'; '.join(cells) or '-'} |")
    return lines


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scorers", default="arima,lstm,tadgan")
    ap.add_argument("--cache", default="/tmp/nab-window-scores")
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "sensors" / "alerting_rules"))
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    cache = Path(args.cache)
    rows, peak_rows, results = [], [], {}
    for scorer in args.scorers.split(","):
        (cache / scorer).mkdir(parents=True, exist_ok=True)
        for subset in SUBSETS:
            for path in sorted((_nab_root(DATA) / "data" / subset).glob("*.csv")):
                dst = cache / scorer / f"{subset}__{path.stem}.npz"
                if not dst.exists():
                    print(f"fit {scorer} {subset}/{path.name}", flush=True)
                    cache_scores(scorer, subset, path, dst)
        lines, results[scorer] = table(cache, scorer)
        rows += lines
        peak_rows += peaks(cache, scorer)
    head = ["| scorer | rule | NAB artificial F1 (tp/fp/fn) | realKnownCause F1 (tp/fp/fn) | "
            "artificialNoAnomaly events per series |", "|---|---|---|---|---|"]
    doc = __doc__.split("\n\n", 2)[2].split("A second table")[0].strip()
    text = (doc + "\n\n" + "\n".join(head + rows) + "\n\nEvery event under `q`: its peak over the threshold, "
            "its length in windows, and whether it overlaps a labelled anomaly window\n\n| scorer | series | events |\n"
            "|---|---|---|\n" + "\n".join(peak_rows) + "\n")
    out = Path(args.out)
    out.with_suffix(".md").write_text(text)
    out.with_suffix(".json").write_text(json.dumps(results, indent=2))
    print("\n".join(head + rows))


if __name__ == "__main__":
    main()
