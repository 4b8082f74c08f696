"""A loaded model: front end + scorer + threshold + alerting window, ready to score streams."""
from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from models.artifacts import PROBE, read_model, split_state
from models.base import AUDIO_DEFAULTS, InputSpec, Scorer, resolve_device
from models.errors import ModelFileError, MonitorError
from models.registry import scorer_class
from models.threshold import Threshold

from .frontend import FRONT_ENDS, AudioFrontEnd

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class AlertingWindow:
    """The alerting window (DESIGN §3): its scores are fitted and alerted on."""

    length_s: float = AUDIO_DEFAULTS["window_s"]
    hop_s: float = AUDIO_DEFAULTS["hop_s"]

    def samples(self, sample_rate: int) -> tuple[int, int]:
        return round(self.length_s * sample_rate), round(self.hop_s * sample_rate)


@dataclass
class LoadedModel:
    folder: Path | None
    meta: dict[str, Any]
    frontend: AudioFrontEnd
    scorer: Scorer
    threshold: Threshold | None
    window: AlertingWindow
    #: A few stored training windows (``models.artifacts.PROBE``), for ``workers.model_check``.
    probe: torch.Tensor | None = None

    @property
    def name(self) -> str:
        return self.scorer.name

    @property
    def version(self) -> str:
        return self.meta.get("model_version", "unsaved")

    @property
    def device(self) -> torch.device:
        return self.scorer.device

    @property
    def vector_stride(self) -> int:
        """Samples between the starts of consecutive scorer vectors."""
        return self.scorer.input_spec.hop * self.frontend.frame_hop

    @property
    def vector_span(self) -> int:
        """Samples one scorer vector covers."""
        return (self.scorer.input_spec.frames - 1) * self.frontend.frame_hop + self.frontend.frame_len

    @property
    def vector_lookback(self) -> int:
        """Samples a vector reads before the sample its score is about: sensor front ends
        score a vector about its newest reading (``scores_last_step``), audio ones about all."""
        if getattr(self.frontend, "scores_last_step", False):
            return self.vector_span - self.frontend.frame_len
        return 0


def load_model(path: str | Path, *, device: str | torch.device = "auto",
               threshold_override: float | None = None) -> LoadedModel:
    """Load a model directory (or its root's ``latest``) onto ``device``."""
    folder, meta, state = read_model(path)
    dev = resolve_device(device)
    try:
        fe_meta = meta["features"]
        fe_cls = FRONT_ENDS[fe_meta.get("kind", "logmel")]
        frontend = fe_cls.from_meta(fe_meta, split_state(state, "frontend"), device=dev)
        spec = InputSpec(**meta["input"])
        scorer = scorer_class(meta["scorer"])(input_spec=spec, device=dev, **meta.get("params", {}))
        scorer.load_state_dict(split_state(state, "scorer"))
        threshold = Threshold.from_dict(meta["threshold"]) if meta.get("threshold") else None
        window = AlertingWindow(**meta.get("alerting_window", {}))
    except MonitorError as exc:
        raise ModelFileError(f"{folder / 'meta.json'}: {exc}") from None
    except (KeyError, TypeError, ValueError, RuntimeError) as exc:
        msg = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__
        raise ModelFileError(f"{folder}: model files do not fit together ({msg})") from None
    if threshold_override is not None and not (math.isfinite(threshold_override) and threshold_override > 0):
        raise ModelFileError(f"{folder}: threshold override {threshold_override}: must be finite and "
                             "positive (at or below zero every window would alarm)")
    if threshold is not None and threshold_override is not None:
        threshold = threshold.with_value(threshold_override)
    log.info("model loaded", extra={"model": str(folder), "scorer": scorer.name,
                                    "model_version": meta["model_version"], "device": str(dev)})
    return LoadedModel(folder, meta, frontend, scorer, threshold, window, probe=state.get(PROBE))
