"""Pooled log-mel statistics and their Mahalanobis distance to a fitted Gaussian.

``pool`` turns a span of frames ``[B, T, F]`` into one statistics vector per span: the mean of
each band over the T frames (``mean``), its maximum (``max``), or two of them (``mean_std``:
mean then standard deviation; ``max_mean``: maximum then mean; 2F values). ``MahalanobisNet`` holds the training statistics' mean and the
inverse of their (shrunk) covariance as buffers and returns the squared distance; its
per-band split sums exactly to that distance, which names the bands that moved.
"""
from __future__ import annotations

import torch
from torch import nn

STATISTICS = ("mean", "mean_std", "max", "max_mean")


def pool(x: torch.Tensor, statistics: str) -> torch.Tensor:
    """``[B, T, F]`` -> ``[B, D]``: each band's mean over the T frames (``mean``, D = F), its
    peak (``max``, D = F: the loudest moment of the span, what an impulsive machine such as a
    valve changes), or two of them one after the other (``mean_std``, ``max_mean``, D = 2F)."""
    if statistics == "max":
        return x.amax(dim=1)
    mean = x.mean(dim=1)
    if statistics == "mean":
        return mean
    if statistics == "max_mean":
        return torch.cat([x.amax(dim=1), mean], dim=1)
    return torch.cat([mean, x.std(dim=1, unbiased=False)], dim=1)


def ledoit_wolf(x: torch.Tensor) -> tuple[torch.Tensor, float]:
    """Ledoit-Wolf shrinkage covariance of rows ``x`` ``[N, D]`` (float64): (covariance, shrinkage).

    The sample covariance is pulled towards ``mu * I`` (mu = its mean eigenvalue) by the
    intensity that minimises the expected Frobenius loss (Ledoit & Wolf 2004), estimated
    from the data: with few rows for many dimensions it shrinks hard, so the inverse exists.
    """
    n, d = x.shape
    xc = x - x.mean(dim=0)
    s = xc.T @ xc / n
    mu = torch.trace(s) / d
    target = mu * torch.eye(d, dtype=x.dtype, device=x.device)
    delta2 = (s - target).square().sum() / d
    # mean over rows of ||x_i x_i^T - S||_F^2, divided by n: the sampling noise of S
    row_sq = xc.square().sum(dim=1)
    beta2 = ((row_sq.square().sum() / n) - (s.square().sum())) / (n * d)
    beta2 = torch.minimum(beta2, delta2)
    shrink = float(beta2 / delta2) if float(delta2) > 0 else 1.0
    return shrink * target + (1.0 - shrink) * s, shrink


SHRINK_TARGETS = ("identity", "diagonal")


def shrink(s: torch.Tensor, alpha: float, target: str) -> torch.Tensor:
    """Covariance ``s`` pulled by ``alpha`` towards ``mu * I`` (``identity``, mu = the mean
    variance) or towards its own diagonal (``diagonal``: each band keeps its variance, the
    correlations shrink)."""
    if target == "identity":
        t = torch.trace(s) / s.shape[0] * torch.eye(s.shape[0], dtype=s.dtype, device=s.device)
    else:
        t = torch.diag(torch.diagonal(s))
    return alpha * t + (1.0 - alpha) * s


def covariance(x: torch.Tensor) -> torch.Tensor:
    """Maximum-likelihood covariance of rows ``x`` ``[N, D]``."""
    xc = x - x.mean(dim=0)
    return xc.T @ xc / len(x)


def gaussian_nll(mean: torch.Tensor, covariance: torch.Tensor, x: torch.Tensor) -> float:
    """Mean negative log-likelihood (without the constant) of rows ``x`` under N(mean, cov)."""
    chol = torch.linalg.cholesky(covariance)
    d = (x - mean).T
    d2 = (d * torch.cholesky_solve(d, chol)).sum(dim=0)
    return float(torch.log(torch.diagonal(chol)).sum() + d2.mean() / 2)


class MahalanobisNet(nn.Module):
    """Squared Mahalanobis distance of pooled statistics to the training ones, per band."""

    def __init__(self, features: int, *, statistics: str = "mean") -> None:
        super().__init__()
        if statistics not in STATISTICS:
            raise ValueError(f"statistics must be one of {STATISTICS}, got {statistics!r}")
        self.statistics = statistics
        self.features = features
        dim = features * (1 if statistics in ("mean", "max") else 2)
        self.register_buffer("mean", torch.zeros(dim))
        self.register_buffer("precision", torch.eye(dim))

    @torch.no_grad()
    def set_gaussian(self, mean: torch.Tensor, covariance: torch.Tensor) -> None:
        self.mean.copy_(mean.to(self.mean))
        # float64 inverse of a symmetric positive-definite matrix, symmetrised against rounding
        prec = torch.linalg.inv(covariance.double())
        self.precision.copy_(((prec + prec.T) / 2).to(self.precision))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``[B, T, F]`` -> (squared distance ``[B]``, per-band share ``[B, F]`` summing to it)."""
        diff = pool(x, self.statistics) - self.mean
        share = diff * (diff @ self.precision)  # sum over D = diff^T P diff
        per_band = share.reshape(share.shape[0], -1, self.features).sum(dim=1)
        return share.sum(dim=1), per_band
