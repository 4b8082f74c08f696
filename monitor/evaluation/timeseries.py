"""Sensor benchmarks: the SKAB leaderboard protocol and Orion's NAB protocol (BENCHMARKS §B).

Both train a model per run / signal (so they take a scorer and its options, not a model
folder) and decide points with the product's own alerting: the gamma threshold fitted on
held-out normal window scores (SKAB) or on the signal's own window scores (NAB, where the
protocol fits on the whole signal: no labels are ever used), then hysteresis. Test labels
are only used to count.

- SKAB: per run, the first 400 rows train (scaling fitted on them; the last ``holdout``
  of them held out for the threshold), the rest test; rows scored as given (no resampling);
  point labels from ``anomaly``; F1 / FAR / MAR pooled over all test points of all runs.
- NAB: per signal, fit on the whole signal and detect on it; detected intervals are the
  alerting events; Orion's unweighted overlap-segment F1 (a true interval is found when any
  detection overlaps it; a detection overlapping none is a false positive), pooled. The
  alerting window is 1 % of the signal (Orion's error-smoothing window), one step apart, and
  the gamma is read at ``threshold_q``. Such windows share all but one of their rows, so the
  hysteresis opens on them far more often than on independent windows at the same quantile:
  every small excursion of their mean crosses it. By default (``confirm``) an excursion becomes
  an event only once its peak stands ``PRUNE_P`` (13 %) over the threshold, telemanom's pruning
  rule for smoothed errors (``models.threshold.confirm_ratio``); the event still starts at its
  first window over the threshold. ``overlap_q`` instead reads the gamma at the quantile at
  which the hysteresis opens as often as on independent windows
  (``models.threshold.overlap_quantile``: 0.9987 for 2 of 3 on windows of 40 steps), which
  also silences most of realKnownCause's detections (``benchmarks/results/sensors``).

Beside the product's decision, both report what the anchors' own rules (Orion's mean + 4
sigma, telemanom's dynamic threshold; ``monitor/evaluation/anchor_rules.py``) make of the same
vector scores, labelled as such: SKAB on the test rows' window scores, NAB on the whole
signal's scores in windows of the same length one step apart (Orion's rolling-mean smoothing).
"""
from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from models.threshold import PRUNE_P

from monitor.alerting import HysteresisSpec
from monitor.evaluation.anchor_rules import (ORION_RULE, SKAB_RULE, TELEMANOM_RULE, intervals, orion_flags, skab_flags,
                           telemanom_flags)
from monitor.errors import DataError, ThresholdError
from monitor.runtime.runner import StreamRunner
from monitor.training.sensors import (SENSOR_HOLDOUT, SENSOR_Q, build_sensor_model, fit_sensor_threshold, grid_segments,
                                      sensor_defaults, sensor_spec)
from monitor.sources.base import AudioChunk
from monitor.sources.csv_sensors import infer_step, read_sensor_csv
from workers.windowing import WindowAggregator, WindowScore

log = logging.getLogger(__name__)

SKAB_TRAIN_ROWS = 400
SKAB_FOLDERS = ("valve1", "valve2", "other")
#: Published figures (BENCHMARKS §B) shown beside ours.
SKAB_PUBLISHED = {"Conv-AE": (0.78, 13.55, 28.02), "MSET": (0.78, None, None),
                  "LSTM-AE": (0.74, None, None), "Vanilla LSTM": (0.54, 12.54, 59.53),
                  "Vanilla AE": (0.39, None, None)}
ORION_ARTIFICIAL = {"tadgan": 0.500, "lstm": 0.400, "arima": 0.308, "best (AER)": 0.750}


@dataclass
class SensorEvalOptions:
    scorer: str
    params: dict[str, Any] = field(default_factory=dict)
    frames: int | None = None
    seed: int = 0
    device: str = "auto"
    holdout: float = SENSOR_HOLDOUT
    threshold_convention: str = "dcase"
    threshold_q: float | None = SENSOR_Q
    #: Alerting window in steps (its score = mean of the per-step scores). None: SKAB 1 step;
    #: NAB 1 % of the signal, Orion's error-smoothing window (chosen from the anchor, not labels).
    window_steps: int | None = None
    #: Alerting window hop in steps (NAB; None: 1).
    hop_steps: int | None = None
    #: True: overlapping alerting windows read the gamma at the quantile at which the
    #: hysteresis opens as often as at ``threshold_q`` on independent windows (module docstring).
    overlap_q: bool = False
    #: True: on overlapping alerting windows an event needs a peak ``models.threshold.PRUNE_P``
    #: over the threshold (telemanom's pruning; module docstring).
    confirm: bool = True
    hysteresis: HysteresisSpec = field(default_factory=HysteresisSpec)
    limit: int | None = None  # first N runs / signals only (smoke runs)
    train_stride: int | None = None  # training windows this many steps apart; None: the scorer's rule


def point_counts(y: np.ndarray, p: np.ndarray) -> dict[str, int]:
    y, p = y.astype(bool), p.astype(bool)
    return {"tp": int((y & p).sum()), "fp": int((~y & p).sum()), "fn": int((y & ~p).sum()),
            "tn": int((~y & ~p).sum())}


def point_metrics(c: dict[str, int]) -> dict[str, float | None]:
    """F1 of the anomaly class, FAR = FP / (FP + TN) and MAR = FN / (FN + TP), in %."""
    tp, fp, fn, tn = c["tp"], c["fp"], c["fn"], c["tn"]
    prec = tp / (tp + fp) if tp + fp else 0.0
    rec = tp / (tp + fn) if tp + fn else 0.0
    return {"f1": 2 * prec * rec / (prec + rec) if prec + rec else 0.0, "precision": prec, "recall": rec,
            "far": 100.0 * fp / (fp + tn) if fp + tn else None,
            "mar": 100.0 * fn / (fn + tp) if fn + tp else None}


def _detect(model, rows: np.ndarray, name: str, spec: HysteresisSpec, sample_rate: float,
            origin_s: float = 0.0, *, with_vectors: bool = False):
    """Rows through the live runner; returns (closed machine events, window scores), and the
    vector scores too with ``with_vectors``."""
    runner = StreamRunner(model, hysteresis=spec, keep_windows=True)
    events = runner.feed(AudioChunk(name, rows.astype(np.float32), sample_rate, 0, end_of_stream=True,
                                    time_origin_s=origin_s))
    done = runner.finished[0] if runner.finished else None
    windows = done.windows if done else []
    machine = [e for e in events if e["status"] == "closed" and e["kind"] == "machine"]
    if with_vectors:
        return machine, windows, (done.summary.all_vector_scores() if done else np.zeros(0))
    return machine, windows


def rewindow(model, vector_scores: np.ndarray, hop: int) -> list[WindowScore]:
    """The alerting windows of ``model``'s length over the same vector scores at another
    ``hop`` (in samples): what the live pipeline would give with that hop (same aggregation)."""
    fe = model.frontend
    length, _ = model.window.samples(fe.sample_rate)
    offset = model.vector_lookback
    span = fe.frame_len if offset else model.vector_span
    agg = WindowAggregator("rewindow", vector_stride=model.vector_stride, vector_span=span, length=length,
                           hop=hop, vector_offset=offset)
    return agg.push(0, np.asarray(vector_scores, dtype=np.float64)) if len(vector_scores) else []


def _rows_in(spans, n: int) -> np.ndarray:
    """Rows of ``n`` covered by half-open (start, end) sample spans."""
    out = np.zeros(n, dtype=bool)
    for a, b in spans:
        out[max(a, 0):min(b, n)] = True
    return out


def flags_from_events(events: list[dict], n: int) -> np.ndarray:
    return _rows_in(((e["start_sample"], e["end_sample"]) for e in events), n)


def window_flags_to_rows(windows: list, flags: np.ndarray, n: int) -> np.ndarray:
    """Rows covered by the flagged alerting windows."""
    return _rows_in(((w.start_sample, w.end_sample) for w, f in zip(windows, flags) if f), n)


def skab_anchor_counts(windows: list, y: np.ndarray, n_train: int, *, n_fit: int,
                       frames: int) -> dict[str, dict[str, int]]:
    """Point counts on the test rows when each anchor's rule decides the window scores: Orion's
    and telemanom's on the test windows' scores, SKAB's on every row's (its limit from the
    windows ending in the fitted rows, its consensus one window length, ``frames`` - 1)."""
    test = [w for w in windows if w.start_sample >= n_train]
    scores = np.array([w.score for w in test], dtype=np.float64)
    out = {}
    for name, rule in (("anchor_rule", orion_flags), ("telemanom_rule", telemanom_flags)):
        rows = window_flags_to_rows(test, rule(scores), len(y))
        out[name] = point_counts(y[n_train:], rows[n_train:])
    row_scores = np.full(len(y), np.nan)
    for w in windows:
        row_scores[w.start_sample] = w.score
    fitted = row_scores[:n_fit][np.isfinite(row_scores[:n_fit])]
    rows = skab_flags(row_scores, fitted, consensus=max(frames - 1, 1)) if len(fitted) else np.zeros(len(y), bool)
    out["skab_rule"] = point_counts(y[n_train:], rows[n_train:])
    return out


def skab_runs(data: str | Path) -> list[Path]:
    root = Path(data)
    base = root / "data" if (root / "data").is_dir() else root
    runs = [f for d in SKAB_FOLDERS for f in sorted((base / d).glob("*.csv"), key=lambda p: int(p.stem)
                                                     if p.stem.isdigit() else 0)]
    if not runs:
        raise DataError(f"{data}: no SKAB runs (expected {'/, '.join(SKAB_FOLDERS)}/ with CSV files)")
    return runs


def evaluate_skab(data: str | Path, opts: SensorEvalOptions,
                  progress: Callable[[str], None] | None = None,
                  on_run: Callable[..., None] | None = None) -> dict[str, Any]:
    """``on_run(name=, windows=, labels=, n_train=, n_fit=, threshold=)``, when given, receives
    each run's alerting-window scores (``benchmarks/skab_alerting_cv.py`` re-decides them)."""
    runs = skab_runs(data)[:opts.limit]
    total = {"tp": 0, "fp": 0, "fn": 0, "tn": 0}
    anchors = {k: dict(total) for k in ("anchor_rule", "telemanom_rule", "skab_rule")}
    rows_out, fit_seconds = [], []
    n_train = SKAB_TRAIN_ROWS
    n_fit = n_train - int(round(n_train * opts.holdout))
    for path in runs:
        table = read_sensor_csv(path, time_column="datetime")
        if "anomaly" not in table.labels:
            raise DataError(f"{path}: no 'anomaly' column")
        x, y = table.values, table.labels["anomaly"] > 0.5
        spec = sensor_spec([x[:n_train]], channels=table.channels, step_s=1.0, max_gap_s=1e12,
                           time_column="datetime")
        t0 = time.perf_counter()
        chosen = sensor_defaults(opts.scorer, [x[:n_fit]], frames=opts.frames, train_stride=opts.train_stride)
        frames = chosen["frames"]
        model, fit = build_sensor_model(scorer=opts.scorer, spec=spec, train=[x[:n_fit]], frames=frames,
                                        window_steps=opts.window_steps or 1, params=opts.params,
                                        seed=opts.seed, device=opts.device,
                                        train_stride=chosen["train_stride"])
        fit_seconds.append(time.perf_counter() - t0)
        model.threshold = fit_sensor_threshold(model, [x[:n_train]], [n_fit],
                                               convention=opts.threshold_convention, q=opts.threshold_q,
                                               what=f"rows {n_fit}-{n_train} of {path.name}")
        name = f"{path.parent.name}/{path.stem}"
        events, windows = _detect(model, x, name, opts.hysteresis, 1.0)
        if on_run is not None:
            on_run(name=name, windows=windows, labels=y, n_train=n_train, n_fit=n_fit,
                   threshold=model.threshold)
        pred = flags_from_events(events, len(x))[n_train:]
        c = point_counts(y[n_train:], pred)
        for k in total:
            total[k] += c[k]
        ac = skab_anchor_counts(windows, y, n_train, n_fit=n_fit, frames=frames)
        for rule, counts in ac.items():
            for k in total:
                anchors[rule][k] += counts[k]
        rows_out.append({"run": name, "test_points": int(len(x) - n_train), "anomalies": int(y[n_train:].sum()),
                         "events": len(events), "threshold": model.threshold.value,
                         "fit_seconds": round(fit_seconds[-1], 3), "frames": frames,
                         "train_stride": chosen["train_stride"], "period": chosen["period"],
                         "epochs": fit.epochs, **c, **point_metrics(c),
                         **ac})
        if progress is not None:
            progress(f"{name}: F1 {rows_out[-1]['f1']:.3f} events {len(events)} fit {fit_seconds[-1]:.1f}s")
    return {"protocol": "skab", "scorer": opts.scorer, "params": opts.params,
            "frames": opts.frames or "rule", "train_stride": opts.train_stride or "rule",
            "runs": len(runs), **point_metrics(total), **total,
            "fit_seconds_per_run": float(np.mean(fit_seconds)),
            "decision": f"gamma {opts.threshold_convention} q={opts.threshold_q or 'default'} on held-out "
                        f"train rows + hysteresis {opts.hysteresis.k}/{opts.hysteresis.n} open, "
                        f"{opts.hysteresis.m} close; window {opts.window_steps or 1} step(s)",
            "anchor_rule": {"rule": ORION_RULE + " of the test rows", **anchors["anchor_rule"],
                            **point_metrics(anchors["anchor_rule"])},
            "telemanom_rule": {"rule": TELEMANOM_RULE + " of the test rows", **anchors["telemanom_rule"],
                               **point_metrics(anchors["telemanom_rule"])},
            "skab_rule": {"rule": SKAB_RULE + " (SKAB's row-level rule; the limit from the fitted rows "
                                  "0-" + str(n_fit) + " of each run)", **anchors["skab_rule"],
                          **point_metrics(anchors["skab_rule"])},
            "published": {k: {"f1": v[0], "far": v[1], "mar": v[2]} for k, v in SKAB_PUBLISHED.items()},
            "rows": rows_out}


# -- NAB ---------------------------------------------------------------------------------
def _prf(c: dict[str, int]) -> dict[str, float]:
    prec = c["tp"] / (c["tp"] + c["fp"]) if c["tp"] + c["fp"] else 0.0
    rec = c["tp"] / (c["tp"] + c["fn"]) if c["tp"] + c["fn"] else 0.0
    return {"f1": 2 * prec * rec / (prec + rec) if prec + rec else 0.0, "precision": prec, "recall": rec}


def _nab_root(data: str | Path) -> Path:
    root = Path(data)
    if not (root / "labels" / "combined_windows.json").is_file():
        raise DataError(f"{data}: not a NAB folder (no labels/combined_windows.json)")
    return root


def _to_seconds(stamp: str) -> float:
    import pandas as pd  # noqa: PLC0415

    return (pd.Timestamp(stamp, tz="UTC") - pd.Timestamp(0, tz="UTC")).total_seconds()


def overlap_segment_counts(truth: list[tuple[float, float]], found: list[tuple[float, float]]) -> dict[str, int]:
    """Orion's unweighted overlap segments: (tp, fp, fn) for one signal."""
    def hits(a, b):
        return a[0] <= b[1] and b[0] <= a[1]

    tp = sum(any(hits(t, f) for f in found) for t in truth)
    fp = sum(not any(hits(f, t) for t in truth) for f in found)
    return {"tp": tp, "fp": fp, "fn": len(truth) - tp}


def evaluate_nab(data: str | Path, subset: str, opts: SensorEvalOptions,
                 progress: Callable[[str], None] | None = None) -> dict[str, Any]:
    root = _nab_root(data)
    if not (root / "data" / subset).is_dir():
        known = sorted(d.name for d in (root / "data").iterdir() if d.is_dir())
        raise DataError(f"{root / 'data'}: no subset folder {subset!r}; found: {', '.join(known) or 'none'}")
    windows = json.loads((root / "labels" / "combined_windows.json").read_text())
    files = sorted((root / "data" / subset).glob("*.csv"))[:opts.limit]
    if not files:
        raise DataError(f"{root / 'data' / subset}: no CSV files")
    q = opts.threshold_q
    total = {"tp": 0, "fp": 0, "fn": 0}
    anchor = {"tp": 0, "fp": 0, "fn": 0}
    tele = dict(anchor)
    rows_out, fit_seconds = [], []
    for path in files:
        key = f"{subset}/{path.name}"
        if key not in windows:
            raise DataError(f"{root / 'labels' / 'combined_windows.json'}: no entry {key!r}")
        table = read_sensor_csv(path, time_column="timestamp", channels=["value"], sort=True)
        step = infer_step(table.ts_s)
        seg = grid_segments(table, step_s=step, max_gap_s=1e12)[0]  # one regular series
        spec = sensor_spec([seg], channels=["value"], step_s=step, max_gap_s=1e12, time_column="timestamp")
        t0 = time.perf_counter()
        wsteps = opts.window_steps or max(1, round(0.01 * len(seg)))
        hop = opts.hop_steps or 1
        chosen = sensor_defaults(opts.scorer, [seg], frames=opts.frames, train_stride=opts.train_stride)
        model, fit = build_sensor_model(scorer=opts.scorer, spec=spec, train=[seg], frames=chosen["frames"],
                                        window_steps=wsteps, hop_steps=hop, params=opts.params,
                                        seed=opts.seed, device=opts.device,
                                        train_stride=chosen["train_stride"])
        fit_seconds.append(time.perf_counter() - t0)
        truth = [(_to_seconds(a), _to_seconds(b)) for a, b in windows[key]]
        try:
            model.threshold = fit_sensor_threshold(model, [seg], [0], convention=opts.threshold_convention,
                                                   q=q, what=f"the whole signal {path.name} (no labels)",
                                                   hysteresis=opts.hysteresis, overlap=opts.overlap_q,
                                                   confirm=opts.confirm)
        except ThresholdError as exc:  # a constant signal (art_flatline): no model, so no machine event
            for counts in (total, anchor, tele):
                counts["fn"] += len(truth)
            rows_out.append({"signal": key, "points": int(len(seg)), "true_intervals": len(truth), "detected": 0,
                             "fit_seconds": round(fit_seconds[-1], 3), "untrainable": str(exc),
                             "tp": 0, "fp": 0, "fn": len(truth)})
            continue
        origin = float(table.ts_s[0])
        events, wins, vectors = _detect(model, seg, key, opts.hysteresis, 1.0 / step, origin, with_vectors=True)
        found = [(e["start"], e["end"]) for e in events]
        c = overlap_segment_counts(truth, found)
        smooth = wins if hop == 1 else rewindow(model, vectors, 1)  # the anchors smooth one step apart
        w_scores = np.array([w.score for w in smooth])
        w_times = np.array([origin + w.start_sample * step for w in smooth])
        a_found = intervals(orion_flags(w_scores), w_times)
        t_found = intervals(telemanom_flags(w_scores), w_times)
        ca, ct = overlap_segment_counts(truth, a_found), overlap_segment_counts(truth, t_found)
        for k in total:
            total[k] += c[k]
            anchor[k] += ca[k]
            tele[k] += ct[k]
        rows_out.append({"signal": key, "points": int(len(seg)), "true_intervals": len(truth),
                         "detected": len(found), "fit_seconds": round(fit_seconds[-1], 3),
                         "threshold": model.threshold.value, "threshold_q": model.threshold.q,
                         "confirm_level": model.threshold.confirm_level,
                         "window_steps": wsteps, "hop_steps": hop,
                         "windows": len(wins), "frames": chosen["frames"], "train_stride": chosen["train_stride"],
                         "period": chosen["period"],
                         "epochs": fit.epochs, "fit_extra": fit.extra, **c,
                         "anchor_rule": {"detected": len(a_found), **ca},
                         "telemanom_rule": {"detected": len(t_found), **ct}})
        if progress is not None:
            progress(f"{key}: tp {c['tp']} fp {c['fp']} fn {c['fn']} fit {fit_seconds[-1]:.1f}s")
    tp, fp, fn = total["tp"], total["fp"], total["fn"]
    prec = tp / (tp + fp) if tp + fp else 0.0
    rec = tp / (tp + fn) if tp + fn else 0.0
    return {"protocol": "nab", "subset": subset, "scorer": opts.scorer, "params": opts.params,
            "frames": opts.frames or "rule", "train_stride": opts.train_stride or "rule",
            "signals": len(files), **total,
            "f1": 2 * prec * rec / (prec + rec) if prec + rec else 0.0, "precision": prec, "recall": rec,
            "fit_seconds_per_signal": float(np.mean(fit_seconds)),
            "anchor_rule": {"rule": ORION_RULE, **anchor, **_prf(anchor)},
            "telemanom_rule": {"rule": TELEMANOM_RULE, **tele, **_prf(tele)},
            "decision": f"gamma {opts.threshold_convention} q={q} "
                        + ("(for independent windows; overlapping ones read at the quantile that opens as "
                           "often) " if opts.overlap_q else "") + "on the signal's own window scores"
                        + (f", an event needs a peak {1 / (1 - PRUNE_P):.4g} x the threshold (telemanom's pruning "
                           f"p {PRUNE_P:g}, overlapping windows)" if opts.confirm else "") + " + "
                        f"hysteresis {opts.hysteresis.k}/{opts.hysteresis.n} open, {opts.hysteresis.m} close; window "
                        f"{opts.window_steps or '1 % of the signal'} step(s), hop {opts.hop_steps or 1} step(s)",
            "published_orion_artificial": ORION_ARTIFICIAL if subset == "artificialWithAnomaly" else None,
            "rows": rows_out}

