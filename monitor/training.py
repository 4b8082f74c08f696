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

from .datasets import EXPECTED_NAMES, Clip, ReadReport, list_clips, read_clip
from .errors import DataError

log = logging.getLogger(__name__)


@dataclass
class TrainOptions:
    scorer: str = "ae"
    seed: int = 0
    device: str = "auto"
    epochs: int | None = None
    threshold_method: str = "gamma"
    threshold_convention: str = "dcase"
    threshold_q: float | None = None
    holdout: float = 0.1
    min_holdout: int = 3
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


def train_audio(data: str | Path, out: str | Path, opts: TrainOptions,
                progress: Progress | None = None) -> tuple[Path, dict[str, Any]]:
    """Train ``opts.scorer`` on the normal clips of ``data``; returns (model folder, meta)."""
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
    audio_of = {c.path: a for c, a in loaded}
    frontend = AudioFrontEnd(spec, device=resolve_device(opts.device))
    vectors = torch.cat([stack_frames(frontend.clip_features(audio_of[c.path]), n_frames=input_spec.frames,
                                      hop=input_spec.hop) for c in train_c])
    params = dict(opts.params or {})
    if opts.epochs is not None:
        params["epochs"] = opts.epochs
    scorer = cls(input_spec=input_spec, device=frontend.device, seed=opts.seed, **params)
    log.info("training", extra={"scorer": cls.name, "clips": len(train_c), "held_out": len(hold_c),
                                "vectors": int(vectors.shape[0]), "device": str(scorer.device)})
    fit = scorer.fit(vectors, progress=progress)

    model = LoadedModel(None, {}, frontend, scorer, None, window)
    held = score_clips(model, [(c.path.name, audio_of[c.path]) for c in hold_c])
    window_scores = [w.score for r in held for w in r.windows]
    threshold = fit_threshold(window_scores, method=opts.threshold_method,
                              convention=opts.threshold_convention, q=opts.threshold_q,
                              fitted_on=f"{len(window_scores)} windows of {len(hold_c)} held-out normal clips")
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
    folder = save_model(out, meta=meta, state=state)
    log.info("model saved", extra={"model": str(folder), "threshold": round(threshold.value, 6),
                                   "seconds": meta["training"]["seconds"]})
    return folder, meta


def _versions() -> dict[str, str]:
    import numpy  # noqa: PLC0415
    import scipy  # noqa: PLC0415

    from . import __version__  # noqa: PLC0415

    return {"monitor": __version__, "torch": torch.__version__, "numpy": numpy.__version__,
            "scipy": scipy.__version__, "python": platform.python_version()}
