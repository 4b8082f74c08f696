"""Train a scorer on sensor CSVs: grid, per-channel normalisation, windows, threshold, save.

The normalisation (mean / std per channel), the grid step, the gap limit and the statistics
the health checks need are learned on the training rows and stored in ``meta.json`` (the
``features`` record, kind ``sensor``). The gamma threshold is fitted on the window scores of
held-out rows: the last ``holdout`` fraction of every segment, scored through the live
pipeline with the preceding rows as context, so the threshold sees scores exactly as live.
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from models.artifacts import PROBE, fingerprint_files, file_sha256, new_model_version, save_model
from models.base import FitReport, InputSpec, Progress, resolve_device
from models.registry import scorer_class
from models.sensor_rules import sensor_settings
from models.threshold import CONVENTIONS, Threshold, confirm_ratio, fit_threshold, overlap_quantile
from workers.model import AlertingWindow, LoadedModel
from workers.model_check import probe_windows
from workers.offline import score_clips
from workers.sensor_frontend import GridRows, SensorFrontEnd, SensorGrid, SensorSpec

from monitor.alerting import HysteresisSpec
from monitor.errors import DataError
from monitor.sources.csv_sensors import SensorTable, infer_step, list_csv, read_sensor_csv
from monitor.training.checks import check_fit, check_trained

log = logging.getLogger(__name__)

#: Default gamma quantile for sensor models (see ``SensorTrainOptions.threshold_q``).
SENSOR_Q = 0.99
#: Default fraction of every segment's rows (its last ones) held out to fit the threshold.
SENSOR_HOLDOUT = 0.2


@dataclass
class SensorTrainOptions:
    scorer: str = "lstm"
    time_column: str = "timestamp"
    channels: list[str] | None = None
    seed: int = 0
    device: str = "auto"
    epochs: int | None = None
    params: dict[str, Any] | None = None
    frames: int | None = None
    step_s: float | None = None
    max_gap_s: float | None = None
    max_gap_steps: float = 10.0
    resample: bool = True
    holdout: float = SENSOR_HOLDOUT
    window_steps: int = 1
    hop_steps: int = 1
    train_stride: int | None = None  # None: the scorer's rule
    threshold_method: str = "gamma"
    threshold_convention: str = "dcase"
    #: Sensor alerting windows are one step (not 1 s of ~30 audio vectors), so DCASE's 0.9
    #: would put 10 % of all steps over the threshold: sensors default to 0.99.
    threshold_q: float | None = SENSOR_Q


def sensor_defaults(scorer: str, train: list[np.ndarray], *, frames: int | None = None,
                    train_stride: int | None = None) -> dict[str, Any]:
    """Window length and training stride for ``scorer`` on these training segments: the
    scorer's rule (``models/sensor_rules.py``) unless given by hand."""
    return sensor_settings(scorer_class(scorer).sensor_rule, train, frames=frames, train_stride=train_stride)


def _longest_runs(rows: np.ndarray) -> np.ndarray:
    same = np.vstack([np.zeros((1, rows.shape[1]), bool), np.diff(rows, axis=0) == 0])
    run, best = np.zeros(rows.shape[1], np.int64), np.zeros(rows.shape[1], np.int64)
    for s in same:
        run = np.where(s, run + 1, 0)
        best = np.maximum(best, run)
    return best


def sensor_spec(segments: list[np.ndarray], *, channels: list[str], step_s: float, max_gap_s: float,
                time_column: str | None) -> SensorSpec:
    """Normalisation and health statistics from the training rows (a list of segments)."""
    rows = np.concatenate(segments).astype(np.float64)
    mean, std = rows.mean(0), rows.std(0)
    std = np.where(std > 1e-9 * np.maximum(1.0, np.abs(mean)), std, 1.0)  # constant channels
    steps = [np.abs(np.diff(s.astype(np.float64), axis=0)) for s in segments if len(s) > 1]
    step_q = np.quantile(np.concatenate(steps), 0.999, axis=0) if steps else np.zeros(len(channels))
    runs = np.max([_longest_runs(s) for s in segments], axis=0)
    return SensorSpec(tuple(channels), float(step_s), tuple(map(float, mean)), tuple(map(float, std)),
                      float(max_gap_s), time_column, tuple(map(float, rows.min(0))),
                      tuple(map(float, rows.max(0))), tuple(map(float, step_q)), tuple(map(int, runs)))


def build_sensor_model(*, scorer: str, spec: SensorSpec, train: list[np.ndarray], frames: int,
                       window_steps: int = 1, hop_steps: int = 1, params: dict[str, Any] | None = None,
                       seed: int = 0, device: str = "auto", train_stride: int = 1,
                       progress: Progress | None = None) -> tuple[LoadedModel, FitReport]:
    """Fit ``scorer`` on the windows of the (raw) training segments, ``train_stride`` steps
    apart (1 = every window; larger strides cut training time on long series); no threshold."""
    torch.manual_seed(seed)
    frontend = SensorFrontEnd(spec, device=resolve_device(device))
    parts = [torch.from_numpy(frontend.normalise(s)).unfold(0, frames, train_stride).transpose(1, 2)
             for s in train if len(s) >= frames]
    if not parts:
        raise DataError(f"no training segment has {frames} steps (the window length); "
                        f"longest: {max((len(s) for s in train), default=0)}")
    windows = torch.cat(parts).contiguous()
    cls = scorer_class(scorer)
    model_scorer = cls(input_spec=InputSpec(frames=frames, features=len(spec.channels)),
                       device=frontend.device, seed=seed, **(params or {}))
    fit = model_scorer.fit(windows, progress=progress)
    window = AlertingWindow(window_steps * spec.step_s, hop_steps * spec.step_s)
    meta = {"model_version": "unsaved", "feature_names": list(spec.channels)}
    return LoadedModel(None, meta, frontend, model_scorer, None, window, probe=probe_windows(windows)), fit


def holdout_window_scores(model: LoadedModel, segments: list[np.ndarray], starts: list[int]) -> np.ndarray:
    """Alerting-window scores of rows ``starts[i]:`` of each segment, scored with context."""
    results = score_clips(model, [(f"seg{i}", s) for i, s in enumerate(segments)])
    return np.array([w.score for r, s0 in zip(results, starts) for w in r.windows
                     if w.start_sample >= s0], dtype=np.float64)


def fit_sensor_threshold(model: LoadedModel, segments: list[np.ndarray], starts: list[int], *,
                         method: str = "gamma", convention: str = "dcase", q: float | None = None,
                         what: str = "held-out rows", hysteresis: HysteresisSpec | None = None,
                         overlap: bool = False, confirm: bool = True) -> Threshold:
    """The threshold on the window scores of rows ``starts[i]:`` of each segment, at ``q``.
    Alerting windows of several steps that overlap are smoothed scores: with ``confirm`` an
    event needs a peak ``PRUNE_P`` over the threshold (``models.threshold.confirm_ratio``);
    with ``overlap`` the gamma is read at the quantile at which ``hysteresis`` opens as often
    as at ``q`` on independent windows (``overlap_quantile``). One-step windows (the default
    of ``monitor train``) never overlap, and neither applies."""
    scores = holdout_window_scores(model, segments, starts)
    length, hop = model.window.samples(model.frontend.sample_rate)
    fitted_on = f"{len(scores)} windows of {what}"
    ratio = confirm_ratio(length=length, hop=hop) if confirm else None
    if ratio:
        fitted_on += f"; an event needs a peak {ratio:.4g} x the threshold (windows of {length} steps {hop} apart)"
    if overlap and method == "gamma" and hop < length:
        spec = hysteresis or HysteresisSpec()
        q_indep = CONVENTIONS[convention] if q is None else q
        q = overlap_quantile(q_indep, length=length, hop=hop, k=spec.k, n=spec.n)
        fitted_on += (f"; q {q:.5g} for windows of {length} steps {hop} apart "
                      f"({q_indep:g} for independent windows, {spec.k} of {spec.n} to open)")
    return replace(fit_threshold(scores, method=method, convention=convention, q=q, fitted_on=fitted_on),
                   confirm=ratio)


def grid_segments(table: SensorTable, *, step_s: float, max_gap_s: float) -> list[np.ndarray]:
    """A table's readings on the fixed step, split at gaps over the limit."""
    grid = SensorGrid(step_s=step_s, n_channels=len(table.channels), max_gap_s=max_gap_s)
    pieces = [p for p in grid.push(table.ts_s, table.values, final=True) if isinstance(p, GridRows)]
    segs: list[list[np.ndarray]] = []
    last_end = None
    for p in pieces:  # pieces split only by gaps or by the NaN prefix; join contiguous ones
        if last_end is not None and p.start == last_end:
            segs[-1].append(p.values)
        else:
            segs.append([p.values])
        last_end = p.start + len(p.values)
    return [np.concatenate(s) for s in segs]


def load_tables(data: str | Path, opts: SensorTrainOptions) -> list[SensorTable]:
    files = list_csv(data)
    first = read_sensor_csv(files[0], time_column=opts.time_column, channels=opts.channels)
    tables = [first] + [read_sensor_csv(f, time_column=opts.time_column, channels=first.channels)
                        for f in files[1:]]
    return tables


def train_sensors(data: str | Path, out: str | Path, opts: SensorTrainOptions,
                  progress: Progress | None = None) -> tuple[Path, dict[str, Any]]:
    """Train ``opts.scorer`` on the sensor CSV(s) in ``data``; returns (model folder, meta)."""
    t0 = time.perf_counter()
    tables = load_tables(data, opts)
    channels = tables[0].channels
    step_s = opts.step_s or float(np.median([infer_step(t.ts_s) for t in tables]))
    max_gap_s = opts.max_gap_s or opts.max_gap_steps * step_s
    if opts.resample:
        segments = [s for t in tables for s in grid_segments(t, step_s=step_s, max_gap_s=max_gap_s)]
    else:
        segments = [t.values.astype(np.float32) for t in tables]
    segments = [s for s in segments if not np.isnan(s).any()] or segments
    if any(np.isnan(s).any() for s in segments):
        raise DataError(f"{data}: readings have missing values; train with resampling (forward-fill)")
    if not 0.0 < opts.holdout < 1.0:
        raise DataError(f"holdout must lie in (0, 1), got {opts.holdout}")
    splits = [int(round(len(s) * (1.0 - opts.holdout))) for s in segments]
    train = [s[:k] for s, k in zip(segments, splits)]
    rule = sensor_defaults(opts.scorer, train, frames=opts.frames, train_stride=opts.train_stride)
    frames = rule["frames"]
    spec = sensor_spec(train, channels=channels, step_s=step_s, max_gap_s=max_gap_s,
                       time_column=opts.time_column)
    params = dict(opts.params or {})
    if opts.epochs is not None:
        params["epochs"] = opts.epochs
    log.info("training", extra={"scorer": opts.scorer, "files": len(tables), "segments": len(segments),
                                "rows": int(sum(map(len, train))), "frames": frames})
    model, fit = build_sensor_model(scorer=opts.scorer, spec=spec, train=train, frames=frames,
                                    window_steps=opts.window_steps, hop_steps=opts.hop_steps,
                                    params=params, seed=opts.seed, device=opts.device,
                                    train_stride=rule["train_stride"], progress=progress)
    check_fit(fit, out)
    hold = [(s, k) for s, k in zip(segments, splits) if len(s) - k >= 1 and len(s) >= frames]
    threshold = fit_sensor_threshold(model, [s for s, _ in hold], [k for _, k in hold],
                                     method=opts.threshold_method, convention=opts.threshold_convention,
                                     q=opts.threshold_q,
                                     what=f"the last {opts.holdout:.0%} of {len(hold)} segment(s)")
    model.threshold = threshold
    check_trained(model, out)
    state = {**{f"scorer.{k}": v for k, v in model.scorer.state_dict().items()}, PROBE: model.probe}
    paths = [t.path for t in tables]
    from monitor.training.audio import library_versions  # noqa: PLC0415

    meta = {
        "scorer": opts.scorer,
        "model_version": new_model_version(opts.scorer, state),
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "modality": "sensor",
        "input": model.scorer.input_spec.to_dict(),
        "features": model.frontend.to_meta(),
        "feature_names": list(channels),
        "alerting_window": {"length_s": model.window.length_s, "hop_s": model.window.hop_s},
        "params": model.scorer.params(),
        "threshold": threshold.to_dict(),
        "training": {
            "data": str(Path(data).resolve()), "fingerprint": fingerprint_files(paths),
            "clip_sha256": sorted(file_sha256(p) for p in paths), "files": [p.name for p in paths],
            "segments": len(segments), "train_rows": int(sum(map(len, train))),
            "holdout": opts.holdout, "resample": opts.resample, "seed": opts.seed,
            "sensor_rule": rule, "fit": fit.to_dict(), "seconds": round(time.perf_counter() - t0, 3),
        },
        "versions": library_versions(),
    }
    folder = save_model(out, meta=meta, state=state)
    log.info("model saved", extra={"model": str(folder), "threshold": round(threshold.value, 6)})
    return folder, meta
