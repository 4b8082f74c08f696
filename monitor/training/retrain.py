"""Retraining from operator labels: ``monitor label`` records become a new ws-ae version."""
from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from models.artifacts import PROBE, file_sha256, new_model_version, save_model
from models.base import Progress
from models.threshold import fit_threshold
from workers.model_check import probe_windows
from workers.offline import score_clips

from monitor.datasets import ReadReport, read_clip
from monitor.errors import DataError
from monitor.training.checks import check_trained
from monitor.training.labels import read_labels
from monitor.training.normal_clips import select_normal_clips
from monitor.training.audio import clip_vectors, library_versions, read_clips, threshold_variants
from monitor.training.ws_ae_stages import select_retrain_margin

log = logging.getLogger(__name__)


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
    (``monitor/training/weak_selection.py``): the current model (after learning the false alarms
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
        v = clip_vectors(frontend, a, spec)
        (fault_v if rec["label"] == "fault" else normal_v).append(v)
        used[rec["label"]] += 1
        if rec["label"] == "fault":
            hashes.append(file_sha256(audio_path))
            fault_clips.append((str(eid), a, v))
    tr = meta.get("training", {})
    data = Path(data or tr.get("data", ""))
    held_names = set(tr.get("held_out_clips", []))
    if not data.is_dir():
        raise DataError(f"{data}: the model's normal training clips are needed to retrain "
                        "(pass --data DIR)")
    normals = select_normal_clips(data, tr.get("normal_glob"))
    loaded = read_clips(normals, sample_rate=sr, min_samples=round(model.window.length_s * sr),
                        report=report, channel=tr.get("channel"))
    train_n = [a for c, a in loaded if c.path.name not in held_names]
    hold = [(c.path.name, a) for c, a in loaded if c.path.name in held_names]
    if len(hold) < 1:
        raise DataError(f"{data}: none of the model's held-out clips {sorted(held_names)[:3]} found")
    x_normal = torch.cat([clip_vectors(frontend, a, spec) for a in train_n] + normal_v)
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
        selection = select_retrain_margin(model, x_normal, fault_clips, hold, seed=int(tr.get("seed", 0)))
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
    model.threshold = threshold
    model.probe = model.probe if model.probe is not None else probe_windows(x_normal)
    check_trained(model, folder.parent if out is None else out)
    state = {**{f"frontend.{k}": v for k, v in frontend.state_dict().items()},
             **{f"scorer.{k}": v for k, v in scorer.state_dict().items()}, PROBE: model.probe}
    new_meta = dict(meta)
    new_meta.update(
        model_version=new_model_version(scorer.name, state),
        created=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        params=scorer.params(), threshold=threshold.to_dict(), versions=library_versions())
    if "threshold_crossfit" in tr:
        log.warning("retraining refits the threshold on the held-out clips only; the version it "
                    "came from was cross-fitted", extra={"model": str(folder)})
    # the paper's variant of the new weights (the parent's would be stale); no cross-fit variant
    new_meta["threshold_variants"] = threshold_variants(
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
