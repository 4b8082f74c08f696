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

from models.artifacts import PROBE, fingerprint_files, file_sha256, new_model_version, save_model
from models.base import InputSpec, Progress, resolve_device
from models.registry import scorer_class
from models.threshold import fit_threshold
from workers.conditioned import score_clips_conditioned
from workers.features import LogMelSpec, stack_frames
from workers.frontend import AudioFrontEnd
from workers.model import AlertingWindow, LoadedModel
from workers.model_check import probe_windows
from workers.offline import score_clips

from monitor.conditions import condition_lookup, fit_context
from monitor.datasets import Clip, ReadReport, list_clips, read_clip, require_usable
from monitor.errors import DataError, MonitorError
from monitor.training.checks import check_fit, check_trained
from monitor.training.normal_clips import select_normal_clips
from monitor.training.ws_ae_stages import fit_stage2_selected, stage2_only

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
    #: normal clip, K extra trainings (``monitor/training/crossfit.py``)
    threshold_folds: int = 0
    #: file-name glob of the normal clips; None = names carrying the token ``normal``
    normal_glob: str | None = None
    #: channel of multi-channel files (index or ``mean``); None = mono files only
    channel: int | str | None = None
    params: dict[str, Any] | None = None
    audio: dict[str, Any] | None = None
    #: condition-clf: a CSV of clip -> conditions (default: the clip names), and a folder of
    #: other machines' normal clips for the "not this machine" class
    conditions: str | None = None
    exposure: str | None = None


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
               report: ReadReport, channel: int | str | None = None) -> list[tuple[Clip, np.ndarray]]:
    out = []
    for c in clips:
        audio = read_clip(c.path, sample_rate=sample_rate, min_samples=min_samples, report=report,
                          channel=channel)
        if audio is not None:
            out.append((c, audio))
    return out


def read_weak_clips(weak: str | Path | list[Path], *, sample_rate: int, min_samples: int,
                    report: ReadReport, channel: int | str | None = None) -> list[tuple[Clip, np.ndarray]]:
    """The labelled anomaly clips of ``--weak`` (a folder, a file or a list of files)."""
    paths = list(weak) if isinstance(weak, (list, tuple)) else None
    clips = [c for p in paths for c in list_clips(p)] if paths is not None else list_clips(weak)
    normal = [c.path.name for c in clips if c.label == "normal"]
    if normal:
        raise DataError(f"{weak}: the labelled-anomaly folder holds clips named 'normal': "
                        f"{', '.join(normal[:5])}")
    loaded = read_clips(clips, sample_rate=sample_rate, min_samples=min_samples, report=report,
                        channel=channel)
    if not loaded:
        raise DataError(f"{weak}: no readable labelled anomaly clips")
    return loaded


def clip_vectors(frontend: AudioFrontEnd, audio: np.ndarray, spec: InputSpec) -> torch.Tensor:
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

    normals = select_normal_clips(data, opts.normal_glob)
    report = ReadReport()
    min_samples = round(window.length_s * spec.sample_rate)
    loaded = read_clips(normals, sample_rate=spec.sample_rate, min_samples=min_samples, report=report,
                        channel=opts.channel)
    require_usable(data, len(normals), len(loaded), report, what="normal clips")
    train_c, hold_c = split_holdout([c for c, _ in loaded], fraction=opts.holdout,
                                    minimum=opts.min_holdout, seed=opts.seed)
    if opts.threshold_folds:
        from monitor.training.crossfit import fold_groups  # noqa: PLC0415

        fold_groups(len(loaded), opts.threshold_folds, seed=opts.seed)  # refuse before training
    audio_of = {c.path: a for c, a in loaded}
    frontend = AudioFrontEnd(spec, device=resolve_device(opts.device))
    vectors_of = {c.path.name: clip_vectors(frontend, audio_of[c.path], input_spec) for c in train_c}
    vectors = torch.cat(list(vectors_of.values()))
    condition_of = condition_lookup(opts.conditions)
    context = fit_context(cls, vectors_of, condition_of=condition_of,
                          exposure=exposure_vectors(opts.exposure, frontend, input_spec, min_samples))
    params = dict(opts.params or {})
    if opts.epochs is not None:
        params["epochs"] = opts.epochs
    scorer = cls(input_spec=input_spec, device=frontend.device, seed=opts.seed, **params)
    weak_loaded: list[tuple[Clip, np.ndarray]] = []
    labels = None
    weak_clips: list[tuple[str, np.ndarray, torch.Tensor]] = []
    learns_labels = getattr(cls, "weakly_supervised", False) or getattr(cls, "learns_from_labels", False)
    if weak is not None:
        if not learns_labels:
            raise DataError(f"--weak: scorer {cls.name!r} learns from normal clips only; "
                            "labelled anomalies need a weakly-supervised scorer (ws-ae) or condition-clf")
        weak_loaded = read_weak_clips(weak, sample_rate=spec.sample_rate, min_samples=min_samples,
                                      report=report, channel=opts.channel)
        normal_hashes = {file_sha256(c.path) for c in train_c + hold_c}
        clash = [c.path.name for c, _ in weak_loaded if file_sha256(c.path) in normal_hashes]
        if clash:
            raise DataError(f"{weak}: labelled anomaly clip(s) are also normal training clips: "
                            f"{', '.join(clash[:5])}")
        weak_clips = [(c.path.name, a, clip_vectors(frontend, a, input_spec)) for c, a in weak_loaded]
        weak_vectors = torch.cat([v for _, _, v in weak_clips])
        labels = torch.cat([torch.zeros(len(vectors)), torch.ones(len(weak_vectors))])
        vectors = torch.cat([vectors, weak_vectors])
        if "clip_ids" in context:  # the labelled clips continue the numbering
            first = int(context["clip_ids"].max()) + 1 if len(context["clip_ids"]) else 0
            context["clip_ids"] = torch.cat([context["clip_ids"]] + [
                torch.full((len(v),), first + i, dtype=torch.long) for i, (_, _, v) in enumerate(weak_clips)])
    log.info("training", extra={"scorer": cls.name, "clips": len(train_c), "held_out": len(hold_c),
                                "vectors": int(vectors.shape[0]), "device": str(scorer.device),
                                "labelled_anomaly_clips": len(weak_loaded)})
    held_audio = [(c.path.name, audio_of[c.path]) for c in hold_c]
    if labels is not None and scorer.hyper.get("stage2_select") == "cv" and len(weak_clips) >= 2:
        fit = fit_stage2_selected(scorer, stage1, vectors[~labels.bool()], weak_clips, held_audio,
                                   frontend=frontend, window=window, seed=opts.seed, progress=progress)
    elif stage1 is not None:
        fit = stage2_only(scorer, stage1, vectors, labels, [c.path.name for c in hold_c], progress)
    elif labels is not None and getattr(cls, "learns_from_labels", False):
        fit = scorer.fit(vectors, labels=labels, progress=progress, **context)
    else:
        fit = scorer.fit(vectors, progress=progress, **context) if labels is None else \
            scorer.fit(vectors, labels=labels, progress=progress)
    check_fit(fit, out)

    model = LoadedModel(None, {}, frontend, scorer, None, window,
                        probe=probe_windows(torch.cat(list(vectors_of.values()))))
    held = score_clips_conditioned(model, held_audio, condition_of)
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
            known_vectors=vectors_of, opts=opts, convention=convention, frontend=frontend, window=window,
            input_spec=input_spec, condition_of=condition_of, exposure=context.get("exposure"))
    model.threshold = threshold
    check_trained(model, out)
    state = {**{f"frontend.{k}": v for k, v in frontend.state_dict().items()},
             **{f"scorer.{k}": v for k, v in scorer.state_dict().items()}, PROBE: model.probe}
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
            "normal_glob": opts.normal_glob, "channel": opts.channel,
            "seed": opts.seed, "read": report.to_dict(), "fit": fit.to_dict(),
            "seconds": round(time.perf_counter() - t0, 3),
            "holdout_clip_scores": {r.name: r.clip_score for r in held},
        },
        "versions": library_versions(),
    }
    if getattr(cls, "learns_from_labels", False) and weak_loaded:  # evaluation refuses these clips
        meta["training"].update({"stage": f"normal clips + {len(weak_loaded)} labelled anomaly clips",
                                 "weak_clips": [c.path.name for c, _ in weak_loaded],
                                 "weak_clip_sha256": sorted(file_sha256(c.path) for c, _ in weak_loaded)})
    if getattr(cls, "weakly_supervised", False):
        meta["training"].update(_weak_meta(weak_loaded, fit))
        meta["threshold_variants"] = threshold_variants(
            model, [(c.path.name, audio_of[c.path]) for c in train_c], threshold)
    if crossfit is not None:
        meta["training"]["threshold_crossfit"] = crossfit
        meta.setdefault("threshold_variants", {})["held_out_windows"] = held_out_threshold.to_dict()
    meta["input_level"] = _input_level([audio_of[c.path] for c in train_c], window, spec.sample_rate)
    folder = save_model(out, meta=meta, state=state)
    log.info("model saved", extra={"model": str(folder), "threshold": round(threshold.value, 6),
                                   "seconds": meta["training"]["seconds"]})
    return folder, meta


def exposure_vectors(folder: str | None, frontend: AudioFrontEnd, spec: InputSpec,
                     min_samples: int) -> torch.Tensor | None:
    """The vectors of every clip in ``--exposure`` (other machines' normal sound), or None."""
    if folder is None:
        return None
    loaded = read_clips(list_clips(folder), sample_rate=frontend.sample_rate, min_samples=min_samples,
                        report=ReadReport())
    if not loaded:
        raise DataError(f"{folder}: no readable exposure clips")
    return torch.cat([clip_vectors(frontend, a, spec) for _, a in loaded])


def _crossfit_threshold(cls, scorer, fit, clips: list[tuple[str, np.ndarray]],
                        weak_clips: list[tuple[str, np.ndarray, torch.Tensor]], *,
                        known_vectors: dict[str, torch.Tensor], opts: TrainOptions,
                        convention: str, frontend: AudioFrontEnd, window: AlertingWindow,
                        input_spec: InputSpec, condition_of=None, exposure: torch.Tensor | None = None):
    """The threshold from out-of-fold window scores of all normal ``clips``: each fold's model
    repeats the full model's recipe (its parameters, seed and, when stage 2 ran, the labelled
    clips at the margin it settled on) without that fold (``monitor/training/crossfit.py``).
    ``known_vectors``: the vectors already cut per clip name (the others are cut here)."""
    from monitor.training.crossfit import out_of_fold_window_scores  # noqa: PLC0415

    vectors = [known_vectors[n] if n in known_vectors else clip_vectors(frontend, a, input_spec)
               for n, a in clips]  # the training clips' vectors exist already
    weak_v = torch.cat([v for _, _, v in weak_clips]) if weak_clips else None
    labels_too = getattr(cls, "learns_from_labels", False)
    with_labels = weak_v is not None and ((fit.extra or {}).get("stages") == 2 or labels_too)
    condition_of = condition_of or condition_lookup(None)
    params = scorer.params()
    if "conditions" in params:  # what the full model learnt is not the fold's recipe
        params = {k: v for k, v in params.items() if k not in ("conditions", "known")}

    def fit_without(skip: set[int]) -> LoadedModel:
        kept = {n: vectors[i] for i, (n, _) in enumerate(clips) if i not in skip}
        x = torch.cat(list(kept.values()))
        context = fit_context(cls, kept, condition_of=condition_of, exposure=exposure)
        torch.manual_seed(opts.seed)
        fold = cls(input_spec=input_spec, device=frontend.device, seed=opts.seed, **params)
        if with_labels:
            labels = torch.cat([torch.zeros(len(x)), torch.ones(len(weak_v))])
            if labels_too:
                if "clip_ids" in context:
                    first = len(kept)
                    context["clip_ids"] = torch.cat([context["clip_ids"]] + [
                        torch.full((len(v),), first + i, dtype=torch.long) for i, (_, _, v) in enumerate(weak_clips)])
                fold.fit(torch.cat([x, weak_v]), labels=labels, **context)
            else:
                fold.fit(torch.cat([x, weak_v]), labels=labels)
        else:
            fold.fit(x, **context)
        return LoadedModel(None, {}, frontend, fold, None, window)

    scores, report = out_of_fold_window_scores(
        clips, folds=opts.threshold_folds, seed=opts.seed, fit_without=fit_without,
        progress=lambda k, n: log.info("threshold cross-fit", extra={"fold": k, "folds": n}),
        condition_of=condition_of)
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


def library_versions() -> dict[str, str]:
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


def threshold_variants(model: LoadedModel, train_clips: list[tuple[str, np.ndarray]],
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
