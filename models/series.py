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

COMBINE = ("mean", "max", "rms", "mewma")


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
    raise ScorerError(f"unknown channel combination {how!r}; known: mean, max, rms")


def window_score(errors: torch.Tensor, span: float, how: str,
                 precision: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Signed normalised per-step errors ``[B, S, F]`` -> (scores ``[B]``, per-channel ``[B, F]``).

    ``mean`` / ``max`` / ``rms``: the EWMA of each channel's *absolute* error, combined.
    ``mewma``: the multivariate EWMA chart (Lowry et al. 1992) on the forecast residuals: the
    EWMA of the *signed* errors ``z`` and its Hotelling statistic ``z' P z / F``, ``P`` the
    inverse second moment of ``z`` on the training windows (``mewma_precision``). It weighs a
    deviation by how unusual it is *jointly*: channels that normally move together and now
    disagree score high even when each stays inside its own range, and noise that the signed
    EWMA averages out does not add up. Under Gaussian residuals the statistic is chi2(F) / F,
    a gamma distribution, which is what the alerting threshold assumes. The per-channel
    values are the statistic's decomposition ``z_i (P z)_i / F`` (clamped at 0: a channel
    that offsets another's deviation explains nothing).
    """
    if how == "mewma":
        if precision is None:
            raise ScorerError("mewma needs the precision matrix learned at training")
        z = ewma_last(errors, span).double()  # collinear channels: the form cancels digits
        parts = z * (z @ precision.double()) / z.shape[1]
        return parts.sum(dim=1).float(), parts.clamp_min(0.0).float()
    per_channel = ewma_last(errors.abs(), span)
    return combine_channels(per_channel, how), per_channel


def mewma_precision(errors: torch.Tensor, span: float, *, ridge: float = 1e-3) -> torch.Tensor:
    """Inverse second moment of the smoothed training errors (``[N, S, F]`` -> ``[F, F]``).

    Uncentred, since the chart's target is a zero forecast error; a small ridge relative to
    the mean variance keeps it invertible when channels are collinear or constant.
    """
    z = ewma_last(errors, span).double()
    second = z.T @ z / max(len(z), 1)
    second += ridge * float(second.diagonal().mean().clamp_min(1e-12)) * torch.eye(len(second), dtype=second.dtype)
    return torch.linalg.inv(second).float()


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
