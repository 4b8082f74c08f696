"""Is a model fit to score live? Checked before a new version replaces a running one.

A version that loads can still be broken: a training run that diverged leaves NaN weights,
and a threshold of NaN or inf silently turns alerting off (nothing compares over NaN) or on.
``check_model`` tries the model on the few training windows stored with it
(``models.artifacts.PROBE``) and looks at its threshold; hot reload swaps only a model that
passes. ``probe_windows`` picks those windows at training time.
"""
from __future__ import annotations

import math

import torch

from models.errors import ModelFileError

from .model import LoadedModel

#: Training windows stored with a model: enough to catch NaN weights, few enough to score in
#: milliseconds and to add at most a few hundred kB to ``weights.pt``.
N_PROBE = 8


def probe_windows(windows: torch.Tensor, n: int = N_PROBE) -> torch.Tensor:
    """``n`` windows spread evenly over ``windows`` ``[N, T, F]`` (all of them when fewer)."""
    if len(windows) <= n:
        return windows.detach().cpu().float().contiguous().clone()
    idx = torch.linspace(0, len(windows) - 1, n).round().long()
    return windows[idx].detach().cpu().float().contiguous().clone()


def broken_reason(model: LoadedModel) -> str | None:
    """Why ``model`` must not score live (threshold or scores not finite), or None."""
    thr = model.threshold
    if thr is None:
        return "it has no threshold"
    if not math.isfinite(float(thr.value)):
        return f"its threshold is not finite ({thr.value})"
    bad = [k for k, v in model.scorer.state_dict().items()
           if torch.is_tensor(v) and v.is_floating_point() and not torch.isfinite(v).all()]
    if bad:
        return f"non-finite weights in {', '.join(sorted(bad)[:3])}"
    if model.probe is not None and len(model.probe):
        scorer = model.scorer
        if getattr(scorer, "condition", 0) is None and getattr(scorer, "known_conditions", None):
            scorer = scorer.with_condition(scorer.known_conditions[0])  # any condition checks the weights
        with torch.inference_mode():
            scores = scorer.score(model.probe.to(model.device))
        if not torch.isfinite(scores).all():
            n = int((~torch.isfinite(scores)).sum())
            return f"{n} of {len(scores)} stored training windows score non-finite"
    return None


def check_model(model: LoadedModel) -> None:
    """Raise ``ModelFileError`` naming the folder when ``broken_reason`` finds a fault."""
    reason = broken_reason(model)
    if reason:
        raise ModelFileError(f"{model.folder or model.version}: {reason}")
