"""The weakly-supervised autoencoder's second stage as training runs it: from a stage-1 model,
with the margin chosen by cross-validation over the labelled clips (``weak_selection``) or fixed.

``train --weak`` and retraining from operator labels (``retrain``) both come here, so the two
decide a stage 2 the same way.
"""
from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from models.base import Progress
from workers.frontend import AudioFrontEnd
from workers.model import AlertingWindow, LoadedModel

from monitor.errors import DataError

log = logging.getLogger(__name__)


def select_retrain_margin(model: LoadedModel, normals: torch.Tensor,
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


def load_stage1(scorer, stage1: str | Path, held_out: list[str]) -> tuple[dict, str]:
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


def stage2_only(scorer, stage1: str | Path, vectors: torch.Tensor, labels: torch.Tensor | None,
                 held_out: list[str], progress: Progress | None):
    """Load a stage-1 model into ``scorer`` and run stage 2 only (see ``train_audio``)."""
    from models.base import FitReport  # noqa: PLC0415

    if labels is None:
        raise DataError("stage1= needs labelled anomalies")
    s1, version = load_stage1(scorer, stage1, held_out)
    lab = labels.bool()
    info = scorer.fit_weak(vectors[~lab], vectors[lab], progress=progress)
    return FitReport(epochs=info["epochs"], seconds=info["seconds"], final_loss=info["final_loss"],
                     n_windows=int(len(vectors)),
                     extra={"stage1": s1, "stage2": info, "stages": 2, "margin": info["margin"],
                            "stage1_from": version})


def fit_stage2_selected(scorer, stage1: str | Path | None, normals: torch.Tensor,
                         weak_clips: list[tuple[str, np.ndarray, torch.Tensor]],
                         held: list[tuple[str, np.ndarray]], *, frontend: AudioFrontEnd,
                         window: AlertingWindow, seed: int, progress: Progress | None):
    """Stage 1, then stage 2 with the margin that cross-validation over the labelled clips
    picks, or no stage 2 when none beats stage 1 (``monitor/training/weak_selection.py``)."""
    from models.base import FitReport  # noqa: PLC0415

    from monitor.training.weak_selection import choose_stage2  # noqa: PLC0415

    t0 = time.perf_counter()
    extra: dict[str, Any] = {}
    if stage1 is not None:
        extra["stage1"], extra["stage1_from"] = load_stage1(scorer, stage1, [n for n, _ in held])
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
