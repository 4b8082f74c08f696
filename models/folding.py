"""Folding an eval-mode BatchNorm into the layer before it, for the scorers' fast paths."""
from __future__ import annotations

import torch
from torch import nn


def fold_bn(weight: torch.Tensor, bias: torch.Tensor | None, bn: nn.BatchNorm1d | nn.BatchNorm2d
            ) -> tuple[torch.Tensor, torch.Tensor]:
    """``bn(layer(x))`` in eval mode as one layer with weight and bias (computed in float64;
    ``weight``'s first dimension is the layer's outputs, whatever its rank)."""
    w = weight.detach().double()
    b = bias.detach().double() if bias is not None else torch.zeros(w.shape[0], dtype=torch.float64,
                                                                     device=w.device)
    scale = 1.0 / torch.sqrt(bn.running_var.detach().double() + bn.eps)
    if bn.affine:
        scale = scale * bn.weight.detach().double()
    shift = -bn.running_mean.detach().double() * scale
    if bn.affine:
        shift = shift + bn.bias.detach().double()
    shape = (-1,) + (1,) * (w.ndim - 1)
    return (w * scale.view(shape)).float(), (b * scale + shift).float()
