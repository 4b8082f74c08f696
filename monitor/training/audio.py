"""Train a scorer on a folder of normal clips, fit its threshold on held-out normals, save it."""
from __future__ import annotations

import logging
import platform
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from models.artifacts import fingerprint_files, file_sha256, new_model_version, save_model
from models.base import InputSpec, Progress, resolve_device
from models.registry import scorer_class
from models.threshold import fit_threshold
from workers.features import LogMelSpec, stack_frames
from workers.frontend import AudioFrontEnd
from workers.model import AlertingWindow, LoadedModel
from workers.offline import score_clips

from monitor.datasets import EXPECTED_NAMES, Clip, ReadReport, list_clips, read_clip
from monitor.errors import DataError, MonitorError

log = logging.getLogger(__name__)


@dataclass
class TrainOptions:
    scorer: str = "ae"
    seed: int = 0
    device: str = "auto"
    epochs: int | None = None
    threshold_method: str = "gamma"
    #: None = the scorer's own default (``threshold_convention`` class attribute, else dcase)
    threshold_convention: str | None = None
    threshold_q: float | None = None
    holdout: float = 0.1
    min_holdout: int = 3
    #: 0 = the threshold from the held-out clips; K >= 2 = from out-of-fold scores of every
    #: normal clip, K extra trainings (``monitor/threshold_crossfit.py``)
    threshold_folds: int = 0
    params: dict[str, Any] | None = None
    audio: dict[str, Any] | None = None


def split_holdout(clips: list[Clip], *, fraction: float, minimum: int, seed: int) -> tuple[list[Clip], list[Clip]]:
    """(training clips, held-out clips for the threshold), a seeded choice."""
    n_hold = max(minimum, round(fraction * len(clips)))
    if len(clips) - n_hold < 1:
        raise DataError(f"{len(clips)} normal clips: need at least {n_hold + 1} "
                        f"({n_hold} held out to fit the threshold, 1 or more to train)")
    order = np.random.default_rng(seed).permutation(len(clips))
    hold = sorted(order[:n_hold].tolist())
    return ([c for i, c in enumerate(clips) if i not in hold], [clips[i] for i in hold])


def read_clips(clips: list[Clip], *, sample_rate: int, min_samples: int,
               report: ReadReport) -> list[tuple[Clip, np.ndarray]]:
    out = []
    for c in clips:
        audio = read_clip(c.path, sample_rate=sample_rate, min_samples=min_samples, report=report)
        if audio is not None:
            out.append((c, audio))
    return out


def read_weak_clips(weak: str | Path | list[Path], *, sample_rate: int, min_samples: int,
                    report: ReadReport) -> list[tuple[Clip, np.ndarray]]:
    """The labelled anomaly clips of ``--weak`` (a folder, a file or a list of files)."""
    paths = list(weak) if isinstance(weak, (list, tuple)) else None
    clips = [c for p in paths for c in list_clips(p)] if paths is not None else list_clips(weak)
    normal = [c.path.name for c in clips if c.label == "normal"]
    if normal:
        raise DataError(f"{weak}: the labelled-anomaly folder holds clips named 'normal': "
                        f"{', '.join(normal[:5])}")
    loaded = read_clips(clips, sample_rate=sample_rate, min_samples=min_samples, report=report)
    if not loaded:
        raise DataError(f"{weak}: no readable labelled anomaly clips")
    return loaded


def _clip_vectors(frontend: AudioFrontEnd, audio: np.ndarray, spec: InputSpec) -> torch.Tensor:
    return stack_frames(frontend.clip_features(audio), n_frames=spec.frames, hop=spec.hop)


def train_audio(data: str | Path, out: str | Path, opts: TrainOptions,
                progress: Progress | None = None, *,
                weak: str | Path | list[Path] | None = None,
                stage1: str | Path | None = None) -> tuple[Path, dict[str, Any]]:
    """Train ``opts.scorer`` on the normal clips of ``data``; returns (model folder, meta).

    ``weak``: labelled anomaly clips for a weakly-supervised scorer (``ws-ae`` stage 2);
    their content hashes go to ``meta.training.weak_clip_sha256`` so evaluation refuses them.
    ``stage1``: a ws-ae model trained by this function on the same data and seed without
    ``weak``; its weights and margin are reused and only stage 2 runs (the same model that
    training both stages gives, without paying for stage 1 again: the benchmark's label curve).
    """
    t0 = time.perf_counter()
    torch.manual_seed(opts.seed)
    cls = scorer_class(opts.scorer)
    audio_cfg = {**cls.audio_defaults, **(opts.audio or {})}
    spec = LogMelSpec(sample_rate=audio_cfg.get("sample_rate", 16000), n_fft=audio_cfg["n_fft"],
                      hop_length=audio_cfg["hop_length"], n_mels=audio_cfg["n_mels"])
    window = AlertingWindow(audio_cfg["window_s"], audio_cfg["hop_s"])
    input_spec = InputSpec(frames=audio_cfg["frames"], features=spec.n_mels, hop=audio_cfg["vector_hop"])

    normals = [c for c in list_clips(data) if c.label == "normal"]
    if not normals:
        raise DataError(f"{data}: no clips named 'normal'; expected names like {EXPECTED_NAMES}")
    report = ReadReport()
    min_samples = round(window.length_s * spec.sample_rate)
    loaded = read_clips(normals, sample_rate=spec.sample_rate, min_samples=min_samples, report=report)
    train_c, hold_c = split_holdout([c for c, _ in loaded], fraction=opts.holdout,
                                    minimum=opts.min_holdout, seed=opts.seed)
    if opts.threshold_folds:
        from monitor.training.crossfit import fold_groups  # noqa: PLC0415

        fold_groups(len(loaded), opts.threshold_folds, seed=opts.seed)  # refuse before training
    audio_of = {c.path: a for c, a in loaded}
    frontend = AudioFrontEnd(spec, device=resolve_device(opts.device))
    vectors_of = {c.path.name: _clip_vectors(frontend, audio_of[c.path], input_spec) for c in train_c}
    vectors = torch.cat(list(vectors_of.values()))
    params = dict(opts.params or {})
    if opts.epochs is not None:
        params["epochs"] = opts.epochs
    scorer = cls(input_spec=input_spec, device=frontend.device, seed=opts.seed, **params)
    weak_loaded: list[tuple[Clip, np.ndarray]] = []
    labels = None
    weak_clips: list[tuple[str, np.ndarray, torch.Tensor]] = []
    if weak is not None:
        if not getattr(cls, "weakly_supervised", False):
            raise DataError(f"--weak: scorer {cls.name!r} learns from normal clips only; "
                            "labelled anomalies need a weakly-supervised scorer (ws-ae)")
        weak_loaded = read_weak_clips(weak, sample_rate=spec.sample_rate, min_samples=min_samples,
                                      report=report)
        normal_hashes = {file_sha256(c.path) for c in train_c + hold_c}
        clash = [c.path.name for c, _ in weak_loaded if file_sha256(c.path) in normal_hashes]
        if clash:
            raise DataError(f"{weak}: labelled anomaly clip(s) are also normal training clips: "
                            f"{', '.join(clash[:5])}")
        weak_clips = [(c.path.name, a, _clip_vectors(frontend, a, input_spec)) for c, a in weak_loaded]
        weak_vectors = torch.cat([v for _, _, v in weak_clips])
        labels = torch.cat([torch.zeros(len(vectors)), torch.ones(len(weak_vectors))])
        vectors = torch.cat([vectors, weak_vectors])
    log.info("training", extra={"scorer": cls.name, "clips": len(train_c), "held_out": len(hold_c),
                                "vectors": int(vectors.shape[0]), "device": str(scorer.device),
                                "labelled_anomaly_clips": len(weak_loaded)})
    held_audio = [(c.path.name, audio_of[c.path]) for c in hold_c]
    if labels is not None and scorer.hyper.get("stage2_select") == "cv" and len(weak_clips) >= 2:
        fit = _fit_stage2_selected(scorer, stage1, vectors[~labels.bool()], weak_clips, held_audio,
                                   frontend=frontend, window=window, seed=opts.seed, progress=progress)
    elif stage1 is not None:
        fit = _stage2_only(scorer, stage1, vectors, labels, [c.path.name for c in hold_c], progress)
    else:
        fit = scorer.fit(vectors, progress=progress) if labels is None else \
            scorer.fit(vectors, labels=labels, progress=progress)

    model = LoadedModel(None, {}, frontend, scorer, None, window)
    held = score_clips(model, held_audio)
    window_scores = [w.score for r in held for w in r.windows]
    convention = opts.threshold_convention or getattr(cls, "threshold_convention", "dcase")
    threshold = fit_threshold(window_scores, method=opts.threshold_method,
                              convention=convention, q=opts.threshold_q,
                              fitted_on=f"{len(window_scores)} windows of {len(hold_c)} held-out normal clips")
    crossfit = None
    if opts.threshold_folds:
        held_out_threshold = threshold
        threshold, crossfit = _crossfit_threshold(
            cls, scorer, fit, [(c.path.name, audio_of[c.path]) for c in train_c + hold_c], weak_clips,
            known_vectors=vectors_of, opts=opts, convention=convention, frontend=frontend, window=window, input_spec=input_spec)
    state = {**{f"frontend.{k}": v for k, v in frontend.state_dict().items()},
             **{f"scorer.{k}": v for k, v in scorer.state_dict().items()}}
    meta = {
        "scorer": cls.name,
        "model_version": new_model_version(cls.name, state),
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "modality": "audio",
        "input": input_spec.to_dict(),
        "features": frontend.to_meta(),
        "feature_names": frontend.feature_names(),
        "alerting_window": {"length_s": window.length_s, "hop_s": window.hop_s},
        "params": scorer.params(),
        "threshold": threshold.to_dict(),
        "training": {
            "data": str(Path(data).resolve()),
            "fingerprint": fingerprint_files([c.path for c in train_c + hold_c]),
            "clip_sha256": sorted(file_sha256(c.path) for c in train_c + hold_c),
            "train_clips": len(train_c), "held_out_clips": [c.path.name for c in hold_c],
            "seed": opts.seed, "read": report.to_dict(), "fit": fit.to_dict(),
            "seconds": round(time.perf_counter() - t0, 3),
            "holdout_clip_scores": {r.name: r.clip_score for r in held},
        },
        "versions": _versions(),
    }
    if getattr(cls, "weakly_supervised", False):
        meta["training"].update(_weak_meta(weak_loaded, fit))
        meta["threshold_variants"] = _threshold_variants(
            model, [(c.path.name, audio_of[c.path]) for c in train_c], threshold)
    if crossfit is not None:
        meta["training"]["threshold_crossfit"] = crossfit
        meta.setdefault("threshold_variants", {})["held_out_windows"] = held_out_threshold.to_dict()
    meta["input_level"] = _input_level([audio_of[c.path] for c in train_c], window, spec.sample_rate)
    folder = save_model(out, meta=meta, state=state)
    log.info("model saved", extra={"model": str(folder), "threshold": round(threshold.value, 6),
                                   "seconds": meta["training"]["seconds"]})
    return folder, meta


def _crossfit_threshold(cls, scorer, fit, clips: list[tuple[str, np.ndarray]],
                        weak_clips: list[tuple[str, np.ndarray, torch.Tensor]], *,
                        known_vectors: dict[str, torch.Tensor], opts: TrainOptions,
                        convention: str, frontend: AudioFrontEnd, window: AlertingWindow,
                        input_spec: InputSpec):
    """The threshold from out-of-fold window scores of all normal ``clips``: each fold's model
    repeats the full model's recipe (its parameters, seed and, when stage 2 ran, the labelled
    clips at the margin it settled on) without that fold (``monitor/threshold_crossfit.py``).
    ``known_vectors``: the vectors already cut per clip name (the others are cut here)."""
    from monitor.training.crossfit import out_of_fold_window_scores  # noqa: PLC0415

    vectors = [known_vectors[n] if n in known_vectors else _clip_vectors(frontend, a, input_spec)
               for n, a in clips]  # the training clips' vectors exist already
    weak_v = torch.cat([v for _, _, v in weak_clips]) if weak_clips else None
    with_labels = weak_v is not None and (fit.extra or {}).get("stages") == 2

    def fit_without(skip: set[int]) -> LoadedModel:
        x = torch.cat([v for i, v in enumerate(vectors) if i not in skip])
        torch.manual_seed(opts.seed)
        fold = cls(input_spec=input_spec, device=frontend.device, seed=opts.seed, **scorer.params())
        if with_labels:
            fold.fit(torch.cat([x, weak_v]), labels=torch.cat([torch.zeros(len(x)), torch.ones(len(weak_v))]))
        else:
            fold.fit(x)
        return LoadedModel(None, {}, frontend, fold, None, window)

    scores, report = out_of_fold_window_scores(
        clips, folds=opts.threshold_folds, seed=opts.seed, fit_without=fit_without,
        progress=lambda k, n: log.info("threshold cross-fit", extra={"fold": k, "folds": n}))
    threshold = fit_threshold(scores, method=opts.threshold_method, convention=convention, q=opts.threshold_q,
                              fitted_on=f"{len(scores)} out-of-fold windows of {len(clips)} normal clips "
                                        f"({opts.threshold_folds} folds)")
    return threshold, {**report, "stage2_in_folds": with_labels}


def _input_level(audios: list[np.ndarray], window: AlertingWindow, sample_rate: int) -> dict[str, Any]:
    """The training audio's level per alerting window (RMS, dBFS): the reference that the
    live ``dead-input`` check compares a microphone's level with."""
    from workers.input_health import level_percentiles, rms_dbfs  # noqa: PLC0415

    length, hop = window.samples(sample_rate)
    levels = [rms_dbfs(a[i:i + length]) for a in audios for i in range(0, len(a) - length + 1, hop)]
    return {"window_rms_dbfs": level_percentiles(levels)}


def _versions() -> dict[str, str]:
    import numpy  # noqa: PLC0415
    import scipy  # noqa: PLC0415

    from monitor import __version__  # noqa: PLC0415

    return {"monitor": __version__, "torch": torch.__version__, "numpy": numpy.__version__,
            "scipy": scipy.__version__, "python": platform.python_version()}


def _weak_meta(weak_loaded: list[tuple[Clip, np.ndarray]], fit) -> dict[str, Any]:
    selection = (fit.extra or {}).get("selection")
    if not weak_loaded:
        stage = "stage 1 only (no labelled anomalies given)"
    elif selection and selection["chosen_margin_scale"] is None:
        stage = f"stage 1 only: {selection['reason']}"
    else:
        stage = f"stage 1 + stage 2 ({len(weak_loaded)} labelled anomaly clips)"
    return {"stage": stage, "weak_clips": [c.path.name for c, _ in weak_loaded],
            "weak_clip_sha256": sorted(file_sha256(c.path) for c, _ in weak_loaded)}


def _threshold_variants(model: LoadedModel, train_clips: list[tuple[str, np.ndarray]],
                        chosen) -> dict[str, Any]:
    """The paper's threshold (gamma fitted on the training clips' own window scores), kept
    beside the product's (held-out normals) so both can be reported; only the stored
    ``threshold`` is applied."""
    out: dict[str, Any] = {}
    scores = [w.score for r in score_clips(model, train_clips) for w in r.windows]
    try:
        thr = fit_threshold(scores, method=chosen.method, convention=chosen.convention or "paper",
                            q=chosen.q, fitted_on=f"{len(scores)} windows of {len(train_clips)} "
                            "training clips (the paper's variant)")
        out["training_windows"] = thr.to_dict()
    except MonitorError as exc:
        out["training_windows"] = {"error": str(exc)}
    return out


def read_labels(path: str | Path) -> dict[str, dict[str, Any]]:
    """The labels file (JSON lines written by ``monitor label``): the last label per event wins."""
    import json  # noqa: PLC0415

    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: labels file does not exist (write it with `monitor label`)")
    out: dict[str, dict[str, Any]] = {}
    for n, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
            eid, label = rec["event_id"], rec["label"]
        except (json.JSONDecodeError, KeyError, TypeError) as exc:
            raise DataError(f"{path}:{n}: not a label record ({exc})") from None
        if label not in ("fault", "normal"):
            raise DataError(f"{path}:{n}: label must be 'fault' or 'normal', got {label!r}")
        out[eid] = rec
    if not out:
        raise DataError(f"{path}: no labels")
    return out


def retrain_from_labels(model_dir: str | Path, labels: str | Path, *, out: str | Path | None = None,
                        data: str | Path | None = None, epochs: int | None = None,
                        device: str = "auto", margin_factor: float = 2.0,
                        progress: Progress | None = None) -> tuple[Path, dict[str, Any]]:
    """Stage 2 of a weakly-supervised model from operator labels; writes a new version.

    Events labelled ``fault`` give anomaly windows (their stored audio), events labelled
    ``normal`` (false alarms) extra normal windows; the model's own normal training clips
    (``data``, default the folder recorded in its meta) keep normal sound reconstructed. The
    threshold is refitted on the same held-out normal clips, with the same convention; the new
    version goes to the model root (or ``out``) and ``latest`` moves to it.

    The margin: an event was raised because its windows scored past the alerting threshold,
    which lies above the paper's margin (fitted on training scores), so the paper's hinge
    would be zero on every labelled fault and teach nothing. Retraining therefore uses
    ``theta = max(stored margin, margin_factor * alerting threshold)``.

    With two or more fault events and ``stage2_select="cv"`` (the default), the faults are
    used only when cross-validation over them says they help, as ``monitor train --weak`` does
    (``monitor/weak_selection.py``): the current model (after learning the false alarms
    labelled ``normal``, if any) against retraining it at ``select_scales`` x theta. When they
    do not help, the faults are left out: the false alarms are still learnt; with none, no
    version is written and the returned meta says why under ``training.retrain_skipped``. One
    fault event: the fixed recipe above.
    """
    from models.artifacts import read_model  # noqa: PLC0415
    from workers.model import load_model  # noqa: PLC0415

    folder, meta, _ = read_model(model_dir)
    model = load_model(folder, device=device)
    scorer, frontend, spec = model.scorer, model.frontend, model.scorer.input_spec
    if not getattr(type(scorer), "weakly_supervised", False) or not hasattr(scorer, "fit_weak"):
        raise DataError(f"{folder}: scorer {scorer.name!r} cannot learn from labels (train ws-ae)")
    t0 = time.perf_counter()
    recs = read_labels(labels)
    base = Path(labels).parent
    sr = frontend.sample_rate
    report = ReadReport()
    min_samples = model.vector_span
    fault_v, normal_v, used, hashes = [], [], {"fault": 0, "normal": 0}, []
    fault_clips: list[tuple[str, np.ndarray, torch.Tensor]] = []
    for eid, rec in recs.items():
        audio_path = Path(rec.get("audio") or "")
        audio_path = audio_path if audio_path.is_absolute() else base / audio_path
        if not rec.get("audio") or not audio_path.is_file():
            raise DataError(f"{labels}: event {eid} has no audio at {audio_path}")
        a = read_clip(audio_path, sample_rate=sr, min_samples=min_samples, report=report)
        if a is None:
            continue
        v = _clip_vectors(frontend, a, spec)
        (fault_v if rec["label"] == "fault" else normal_v).append(v)
        used[rec["label"]] += 1
        if rec["label"] == "fault":
            hashes.append(file_sha256(audio_path))
            fault_clips.append((str(eid), a, v))
    tr = meta.get("training", {})
    data = Path(data or tr.get("data", ""))
    held_names = set(tr.get("held_out_clips", []))
    normals = [c for c in list_clips(data) if c.label == "normal"] if data.is_dir() else []
    if not normals:
        raise DataError(f"{data}: the model's normal training clips are needed to retrain "
                        "(pass --data DIR)")
    loaded = read_clips(normals, sample_rate=sr, min_samples=round(model.window.length_s * sr),
                        report=report)
    train_n = [a for c, a in loaded if c.path.name not in held_names]
    hold = [(c.path.name, a) for c, a in loaded if c.path.name in held_names]
    if len(hold) < 1:
        raise DataError(f"{data}: none of the model's held-out clips {sorted(held_names)[:3]} found")
    x_normal = torch.cat([_clip_vectors(frontend, a, spec) for a in train_n] + normal_v)
    x_fault = torch.cat(fault_v) if fault_v else x_normal.new_zeros((0, spec.frames, spec.features))
    if epochs is not None:
        scorer.hyper["stage2_epochs"] = epochs
    if model.threshold is not None and margin_factor > 0:
        scorer.hyper["margin"] = max(float(scorer.hyper["margin"] or 0.0),
                                     margin_factor * float(model.threshold.value))
    selection, normals_only = None, None
    if len(fault_clips) >= 2 and scorer.hyper.get("stage2_select") == "cv":
        if normal_v:  # the false alarms are learnt either way: that model is the one to beat
            normals_only = scorer.fit_weak(x_normal, x_fault[:0], progress=progress)
        selection = _select_retrain_margin(model, x_normal, fault_clips, hold, seed=int(tr.get("seed", 0)))
        if selection.scale is None and normals_only is None:
            log.warning("model unchanged: the labelled faults do not help", extra={
                "model": str(folder), "reason": selection.reason})
            kept = {**meta, "training": {**tr, "retrain_skipped": f"operator labels: {selection.reason}",
                                         "retrain_selection": selection.to_dict()}}
            return folder, kept
    if selection is not None and selection.scale is None:  # the faults left out
        x_fault, info = x_fault[:0], normals_only
    else:
        info = scorer.fit_weak(x_normal, x_fault, progress=progress)
    old = model.threshold
    held = score_clips(model, hold)
    scores = [w.score for r in held for w in r.windows]
    threshold = fit_threshold(scores, method=old.method, convention=old.convention or "paper",
                              q=old.q, fitted_on=f"{len(scores)} windows of {len(hold)} held-out "
                              "normal clips")
    state = {**{f"frontend.{k}": v for k, v in frontend.state_dict().items()},
             **{f"scorer.{k}": v for k, v in scorer.state_dict().items()}}
    new_meta = dict(meta)
    new_meta.update(
        model_version=new_model_version(scorer.name, state),
        created=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        params=scorer.params(), threshold=threshold.to_dict(), versions=_versions())
    if "threshold_crossfit" in tr:
        log.warning("retraining refits the threshold on the held-out clips only; the version it "
                    "came from was cross-fitted", extra={"model": str(folder)})
    # the paper's variant of the new weights (the parent's would be stale); no cross-fit variant
    new_meta["threshold_variants"] = _threshold_variants(
        model, [(c.path.name, a) for c, a in loaded if c.path.name not in held_names], threshold)
    new_meta["training"] = {
        **{k: v for k, v in tr.items() if k != "threshold_crossfit"},
        "retrained_from": meta["model_version"], "labels": str(Path(labels).resolve()),
        "labelled_events": used, "margin_factor": margin_factor,
        "stage": f"stage 2 from operator labels ({used['fault']} fault, {used['normal']} normal events"
                 + ("" if selection is None else f"; {selection.reason}" if selection.scale is not None
                    else f"; the fault events left out, {selection.reason}") + ")",
        **({"retrain_selection": selection.to_dict()} if selection is not None else {}),
        "weak_clip_sha256": sorted(set(tr.get("weak_clip_sha256", [])) | set(hashes)),
        "fit": {"epochs": info["epochs"], "seconds": info["seconds"],
                "final_loss": info["final_loss"], "n_windows": int(len(x_normal) + len(x_fault)),
                "extra": {"stage2": info, "margin": info["margin"]}},
        "seconds": round(time.perf_counter() - t0, 3), "read": report.to_dict(),
        "holdout_clip_scores": {r.name: r.clip_score for r in held}}
    root = Path(out) if out is not None else folder.parent
    saved = save_model(root, meta=new_meta, state=state)
    log.info("model retrained from labels", extra={"model": str(saved), "from": meta["model_version"],
                                                    **{f"labels_{k}": v for k, v in used.items()}})
    return saved, new_meta


def _select_retrain_margin(model: LoadedModel, normals: torch.Tensor,
                           faults: list[tuple[str, np.ndarray, torch.Tensor]],
                           hold: list[tuple[str, np.ndarray]], *, seed: int):
    """Cross-validate retraining over the fault events: the model as it is against stage 2 at
    ``select_scales`` x the retraining margin; sets the chosen margin on the scorer."""
    from monitor.training.weak_selection import choose_stage2  # noqa: PLC0415

    h = model.scorer.hyper
    base, kept_scale = float(h["margin"]), h.get("margin_scale", 1.0)
    h["margin_scale"] = 1.0  # the candidates are multiples of the retraining margin itself
    try:
        choice = choose_stage2(model, normals, faults, hold, seed=seed, scales=tuple(h["select_scales"]),
                               folds=int(h["select_folds"]), baseline="the current model")
    finally:
        h["margin_scale"] = kept_scale
    h["margin"] = base * choice.scale if choice.scale is not None else base
    log.info("retraining selection", extra={"choice": choice.reason, "cv": choice.cv})
    return choice


def _load_stage1(scorer, stage1: str | Path, held_out: list[str]) -> tuple[dict, str]:
    """Load a stage-1 ws-ae model into ``scorer``: (its stage-1 fit info, its version)."""
    from models.artifacts import read_model, split_state  # noqa: PLC0415

    folder, meta, state = read_model(stage1)
    if meta.get("scorer") != scorer.name or not hasattr(scorer, "fit_weak"):
        raise DataError(f"{folder}: stage1= needs a {scorer.name} stage-1 model")
    if sorted(meta["training"].get("held_out_clips", [])) != sorted(held_out):
        raise DataError(f"{folder}: trained with other held-out clips (same data and seed needed)")
    scorer.load_state_dict(split_state(state, "scorer"))
    scorer.hyper["margin"] = meta["params"]["margin"]
    return meta["training"]["fit"].get("extra", {}).get("stage1", {}), meta["model_version"]


def _stage2_only(scorer, stage1: str | Path, vectors: torch.Tensor, labels: torch.Tensor | None,
                 held_out: list[str], progress: Progress | None):
    """Load a stage-1 model into ``scorer`` and run stage 2 only (see ``train_audio``)."""
    from models.base import FitReport  # noqa: PLC0415

    if labels is None:
        raise DataError("stage1= needs labelled anomalies")
    s1, version = _load_stage1(scorer, stage1, held_out)
    lab = labels.bool()
    info = scorer.fit_weak(vectors[~lab], vectors[lab], progress=progress)
    return FitReport(epochs=info["epochs"], seconds=info["seconds"], final_loss=info["final_loss"],
                     n_windows=int(len(vectors)),
                     extra={"stage1": s1, "stage2": info, "stages": 2, "margin": info["margin"],
                            "stage1_from": version})


def _fit_stage2_selected(scorer, stage1: str | Path | None, normals: torch.Tensor,
                         weak_clips: list[tuple[str, np.ndarray, torch.Tensor]],
                         held: list[tuple[str, np.ndarray]], *, frontend: AudioFrontEnd,
                         window: AlertingWindow, seed: int, progress: Progress | None):
    """Stage 1, then stage 2 with the margin that cross-validation over the labelled clips
    picks, or no stage 2 when none beats stage 1 (``monitor/weak_selection.py``)."""
    from models.base import FitReport  # noqa: PLC0415

    from monitor.training.weak_selection import choose_stage2  # noqa: PLC0415

    t0 = time.perf_counter()
    extra: dict[str, Any] = {}
    if stage1 is not None:
        extra["stage1"], extra["stage1_from"] = _load_stage1(scorer, stage1, [n for n, _ in held])
    else:
        extra["stage1"] = scorer.fit_normal(normals, progress=progress)
    h = scorer.hyper
    choice = choose_stage2(LoadedModel(None, {}, frontend, scorer, None, window), normals,
                           weak_clips, held, seed=seed, scales=tuple(h["select_scales"]),
                           folds=int(h["select_folds"]))
    log.info("stage-2 selection", extra={"choice": choice.reason, "cv": choice.cv})
    extra["selection"] = choice.to_dict()
    if choice.scale is not None:
        h["margin"] = float(h["margin"]) / float(h["margin_scale"]) * choice.scale
        h["margin_scale"] = choice.scale
        extra["stage2"] = scorer.fit_weak(normals, torch.cat([v for _, _, v in weak_clips]),
                                          progress=progress)
    last = extra.get("stage2", extra["stage1"])
    return FitReport(epochs=sum(extra[k].get("epochs", 0) for k in ("stage1", "stage2") if k in extra),
                     seconds=time.perf_counter() - t0, final_loss=last.get("final_loss", float("nan")),
                     n_windows=int(len(normals)) + sum(len(v) for _, _, v in weak_clips),
                     extra={**extra, "stages": 2 if "stage2" in extra else 1, "margin": h["margin"]})
