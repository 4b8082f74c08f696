"""An inference-only form of the DCASE autoencoder: BatchNorm folded into the Linear layers.

Why: in eval mode each ``Linear -> BatchNorm -> ReLU`` block is one affine map plus a ReLU,
so folding the BatchNorm statistics into the weights (in float64, then float32) removes two
elementwise passes per layer. On CPU the folded layers run through oneDNN's fused
linear+ReLU kernel (``torch.ops.mkldnn._linear_pointwise``): on our 2-core AMD EPYC boxes MKL's
sgemm reaches ~100 GFLOP/s per core and oneDNN ~220 (it picks AVX-512 by CPU feature, not by
vendor) once a call has ~1,000 rows: per call it costs ~25 us more than its multiply-adds, so
at 256 rows the 128 x 128 layers ran at ~160 GFLOP/s and at 1,024 at ~210 (the whole model
~109 -> ~90 us per stream-second, one core). Rows go through in chunks of 1,024.

Scores equal the plain module's within float32 rounding (a test holds them to 1e-5 relative).
The fused kernel is a private torch op: it is checked against ``F.linear`` once at build time
and the plain ``F.linear`` path is used where it is missing or disagrees.
"""
from __future__ import annotations

import logging

import torch
from torch import nn
from torch.nn import functional as F

from ..folding import fold_bn
from .net import DcaseAutoencoder

log = logging.getLogger(__name__)

#: Rows per chunk: big enough to amortise oneDNN's per-call cost, small enough that a chunk's
#: activations (1,024 x 128 float32, 0.5 MB) stay in L2.
DEFAULT_CHUNK = 1024


def fold_linear_bn(linear: nn.Linear, bn: nn.BatchNorm1d | None) -> tuple[torch.Tensor, torch.Tensor]:
    """``bn(linear(x))`` in eval mode as one affine map ``x @ W.T + b`` (computed in float64)."""
    if bn is None:
        w, b = linear.weight.detach(), linear.bias
        b = b.detach() if b is not None else torch.zeros(w.shape[0], device=w.device)
        return w.float().contiguous(), b.float().contiguous()
    w, b = fold_bn(linear.weight, linear.bias, bn)
    return w.contiguous(), b.contiguous()


def folded_layers(net: nn.Module) -> list[tuple[torch.Tensor, torch.Tensor, bool]]:
    """``[(W, b, relu_after)]`` for a stack of ``Linear [BatchNorm] [ReLU]`` blocks."""
    mods = [m for m in net.modules() if isinstance(m, (nn.Linear, nn.BatchNorm1d, nn.ReLU))]
    layers: list[tuple[torch.Tensor, torch.Tensor, bool]] = []
    i = 0
    while i < len(mods):
        lin = mods[i]
        if not isinstance(lin, nn.Linear):
            raise ValueError(f"cannot fold {type(lin).__name__} without a Linear before it")
        bn = mods[i + 1] if i + 1 < len(mods) and isinstance(mods[i + 1], nn.BatchNorm1d) else None
        i += 1 + (bn is not None)
        relu = i < len(mods) and isinstance(mods[i], nn.ReLU)
        i += relu
        layers.append((*fold_linear_bn(lin, bn), relu))
    return layers


def _onednn_linear() -> object | None:
    op = getattr(torch.ops.mkldnn, "_linear_pointwise", None) if torch.backends.mkldnn.is_available() else None
    return op


class FoldedAutoencoder:
    """The eval-mode ``DcaseAutoencoder`` as folded affine layers; ``[B, D] -> [B, D]``."""

    def __init__(self, net: DcaseAutoencoder, *, chunk: int = DEFAULT_CHUNK, use_onednn: bool = True) -> None:
        if net.training:
            raise ValueError("fold an autoencoder in eval mode only (BatchNorm uses running statistics)")
        self.layers = folded_layers(net)
        self.device = self.layers[0][0].device
        self.chunk = chunk
        self._op = _onednn_linear() if use_onednn and self.device.type == "cpu" else None
        if self._op is not None and not self._op_agrees():
            self._op = None

    @property
    def backend(self) -> str:
        return "onednn" if self._op is not None else "torch"

    def _op_agrees(self) -> bool:
        """The private fused op must give what ``F.linear`` gives (else fall back quietly)."""
        g = torch.Generator().manual_seed(0)
        x = torch.randn(37, self.layers[0][0].shape[1], generator=g)
        try:
            with torch.inference_mode():
                a = self._run(x, self._op)
                b = self._run(x, None)
        except RuntimeError as exc:  # an op missing from this torch build
            log.info("oneDNN fused linear unavailable, using F.linear", extra={"error": str(exc)[:200]})
            return False
        ok = bool((a - b).abs().max() <= 1e-5 * b.abs().max().clamp_min(1e-30))
        if not ok:
            log.warning("oneDNN fused linear disagrees with F.linear; using F.linear")
        return ok

    def _bucket(self, m: int) -> int:
        """Rows to run ``m`` rows as: oneDNN builds (JIT-compiles) a kernel per row count, ~1-4 ms
        each per layer, and a stream of varying batch sizes would keep rebuilding them; padding
        to a multiple of 32 up to 256 rows and of 128 above keeps ~15 row counts per layer, all
        cached after warm-up, and wastes at most 1/3 of a call (257 -> 384 rows)."""
        if self._op is None or m >= self.chunk:
            return m
        step = 32 if m <= 256 else 128
        return 16 if m <= 16 else -(-m // step) * step

    def _run_rows(self, x: torch.Tensor) -> torch.Tensor:
        m = x.shape[0]
        mb = self._bucket(m)
        if mb == m:
            return self._run(x, self._op)
        padded = x.new_zeros((mb, x.shape[1]))
        padded[:m] = x
        return self._run(padded, self._op)[:m]

    def _run(self, x: torch.Tensor, op) -> torch.Tensor:
        for w, b, relu in self.layers:
            if op is not None:
                x = op(x, w, b, "relu" if relu else "none", [], "")
            else:
                x = F.linear(x, w, b)
                if relu:
                    x = x.relu_()
        return x

    @torch.inference_mode()
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``[B, D]`` float32 on the model's device -> reconstruction ``[B, D]``."""
        x = x.contiguous()
        if x.shape[0] <= self.chunk:
            return self._run_rows(x)
        out = torch.empty_like(x)
        for i in range(0, x.shape[0], self.chunk):
            out[i:i + self.chunk] = self._run_rows(x[i:i + self.chunk])
        return out

    __call__ = forward

    @torch.inference_mode()
    def score_detail(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``[B, T, F]`` -> (MSE per vector ``[B]``, squared error averaged over T ``[B, F]``)."""
        b, t, f = x.shape
        flat = x.reshape(b, t * f).contiguous()
        per_feature = torch.empty((b, f), dtype=torch.float32, device=x.device)
        for i in range(0, b, self.chunk):
            xi = flat[i:i + self.chunk]
            err = self._run_rows(xi).sub_(xi).square_()
            torch.mean(err.view(-1, t, f), dim=1, out=per_feature[i:i + self.chunk])
        return per_feature.mean(dim=1), per_feature
