"""The DCASE 2020 Task 2 baseline autoencoder as a pure ``nn.Module``.

Dense 128 x 4 -> 8 -> 128 x 4 -> input, each hidden layer followed by BatchNorm and ReLU
(the bottleneck too), a linear output. Keras defaults are kept where they change results:
Glorot-uniform weights, zero biases, BatchNorm momentum 0.99 (torch's 0.01) and eps 1e-3.
"""
from __future__ import annotations

import torch
from torch import nn

from ..dense import mirrored_stack


def _dense_block(n_in: int, n_out: int) -> list[nn.Module]:
    return [nn.Linear(n_in, n_out), nn.BatchNorm1d(n_out, eps=1e-3, momentum=0.01), nn.ReLU()]


class DcaseAutoencoder(nn.Module):
    """``[B, input_dim]`` -> ``[B, input_dim]`` reconstruction."""

    def __init__(self, input_dim: int, *, hidden: int = 128, latent: int = 8, layers: int = 4) -> None:
        super().__init__()
        self.encoder, self.decoder = mirrored_stack(input_dim, hidden=hidden, latent=latent, layers=layers,
                                                    block=_dense_block)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.encoder(x))
