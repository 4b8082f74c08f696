"""Maths the sensor scorers share: error smoothing inside a window, channel combination,
and recovering a contiguous series from overlapping training windows.

Smoothing happens *inside* one window so that ``score`` stays pure and batched == one by
one: a window's score is the EWMA of its own per-step errors, read at its last step. With
a hop of one step, consecutive windows therefore give the same smoothed series a stateful
EWMA over the stream would give, up to the EWMA's weights that fall outside the window.
"""
from __future__ import annotations

import torch

from .errors import ScorerError

COMBINE = ("mean", "max", "rms")


def ewma_weights(n: int, span: float, *, device=None) -> torch.Tensor:
    """Normalised EWMA weights for ``n`` steps (oldest first), pandas' ``adjust=True``."""
    if span < 1:
        raise ScorerError(f"EWMA span must be >= 1, got {span}")
    alpha = 2.0 / (span + 1.0)
    w = (1.0 - alpha) ** torch.arange(n - 1, -1, -1, dtype=torch.float64)
    return (w / w.sum()).to(device=device, dtype=torch.float32)


def ewma_last(errors: torch.Tensor, span: float) -> torch.Tensor:
    """``[B, S, F]`` per-step errors -> ``[B, F]`` EWMA value at the last step."""
    w = ewma_weights(errors.shape[1], span, device=errors.device)
    return torch.einsum("bsf,s->bf", errors, w)


def combine_channels(per_channel: torch.Tensor, how: str) -> torch.Tensor:
    """``[B, F]`` normalised per-channel errors -> ``[B]``."""
    if how == "mean":
        return per_channel.mean(dim=1)
    if how == "max":
        return per_channel.amax(dim=1)
    if how == "rms":
        return per_channel.square().mean(dim=1).sqrt()
    raise ScorerError(f"unknown channel combination {how!r}; known: {', '.join(COMBINE)}")


def contiguous_segments(windows: torch.Tensor) -> list[torch.Tensor]:
    """Overlapping windows ``[N, T, F]`` -> the contiguous series they were cut from.

    Consecutive windows one step apart (window i+1 = window i shifted by one) are joined;
    anything else starts a new segment. Training windows cut with hop 1 from one stream give
    back that stream exactly; unrelated windows come back as separate segments.
    """
    segments: list[torch.Tensor] = []
    cur: list[torch.Tensor] = [windows[0]]
    for prev, nxt in zip(windows[:-1], windows[1:]):
        if prev.shape[0] > 1 and torch.equal(prev[1:], nxt[:-1]):
            cur.append(nxt[-1:])
        else:
            segments.append(torch.cat(cur))
            cur = [nxt]
    segments.append(torch.cat(cur))
    return segments
