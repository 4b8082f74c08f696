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


class WeaklySupervisedAutoencoder(nn.Module):
    """``[B, input_dim]`` -> ``[B, input_dim]`` reconstruction, in standardised units."""

    def __init__(self, input_dim: int, *, hidden: int = 128, latent: int = 8, layers: int = 4) -> None:
        super().__init__()
        enc: list[nn.Module] = []
        n = input_dim
        for _ in range(layers):
            enc += [nn.Linear(n, hidden), nn.ReLU()]
            n = hidden
        enc += [nn.Linear(hidden, latent), nn.ReLU()]
        dec: list[nn.Module] = []
        n = latent
        for _ in range(layers):
            dec += [nn.Linear(n, hidden), nn.ReLU()]
            n = hidden
        dec.append(nn.Linear(hidden, input_dim))
        self.encoder = nn.Sequential(*enc)
        self.decoder = nn.Sequential(*dec)
        self.register_buffer("mean", torch.zeros(input_dim))
        self.register_buffer("std", torch.ones(input_dim))
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.xavier_uniform_(m.weight)
                nn.init.zeros_(m.bias)

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
