"""The weakly-supervised autoencoder's network as a pure ``nn.Module`` (the paper's Fig. 2).

Encoder: 4 fully connected layers of 128 then an 8-d latent; decoder: 4 layers of 128 then
the input size; ReLU after every layer but the decoder's output. No BatchNorm (the paper has
none, and stage 2 trains on batches that are half anomalies, whose statistics BatchNorm would
learn). Inputs are standardised per input value with statistics of the training normals,
kept as buffers (identity until ``set_standardisation`` is called), so the Adam steps do not
depend on the dB scale of a machine's log-mel frames.
"""
from __future__ import annotations

import torch
from torch import nn

from ..dense import mirrored_stack


def _relu_block(n_in: int, n_out: int) -> list[nn.Module]:
    return [nn.Linear(n_in, n_out), nn.ReLU()]


class WeaklySupervisedAutoencoder(nn.Module):
    """``[B, input_dim]`` -> ``[B, input_dim]`` reconstruction, in standardised units."""

    def __init__(self, input_dim: int, *, hidden: int = 128, latent: int = 8, layers: int = 4) -> None:
        super().__init__()
        self.encoder, self.decoder = mirrored_stack(input_dim, hidden=hidden, latent=latent, layers=layers,
                                                    block=_relu_block)
        self.register_buffer("mean", torch.zeros(input_dim))
        self.register_buffer("std", torch.ones(input_dim))

    def set_standardisation(self, mean: torch.Tensor, std: torch.Tensor) -> None:
        self.mean.copy_(mean)
        self.std.copy_(std.clamp_min(1e-3))

    def standardise(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        """``z`` is already standardised (``standardise(x)``); returns its reconstruction."""
        return self.decoder(self.encoder(z))

    def errors(self, x: torch.Tensor) -> torch.Tensor:
        """Squared reconstruction error per input value ``[B, input_dim]`` of raw inputs."""
        z = self.standardise(x)
        return (z - self(z)).square()
