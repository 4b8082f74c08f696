"""The SKAB leaderboard's convolutional autoencoder as a pure ``nn.Module``.

Encoder: Conv1d 32 -> 16 filters, kernel 7, stride 2 each (time halves twice), ReLU,
dropout 0.2 after the first; decoder: transposed Conv1d 16 -> 32, stride 2 each (time
doubles twice), ReLU, dropout 0.2 after the first; a final transposed Conv1d, stride 1,
to ``out_channels``. The anchor (SKAB's Keras model) ends in ONE output channel, broadcast
against all inputs, so it reconstructs one shared trace; ``out_channels=features`` gives
a per-channel reconstruction. Glorot-uniform kernels and zero biases, as Keras.
"""
from __future__ import annotations

import torch
from torch import nn


class ConvAutoencoder(nn.Module):
    """``[B, T, F]`` -> ``[B, T, out_channels]`` (any T: the output is cropped to T)."""

    def __init__(self, features: int, *, filters: tuple[int, int] = (32, 16), kernel: int = 7,
                 dropout: float = 0.2, out_channels: int = 1) -> None:
        super().__init__()
        wide, narrow = filters
        pad = kernel // 2
        self.encoder = nn.Sequential(
            nn.Conv1d(features, wide, kernel, stride=2, padding=pad), nn.ReLU(), nn.Dropout(dropout),
            nn.Conv1d(wide, narrow, kernel, stride=2, padding=pad), nn.ReLU())
        self.decoder = nn.Sequential(
            nn.ConvTranspose1d(narrow, narrow, kernel, stride=2, padding=pad, output_padding=1), nn.ReLU(),
            nn.Dropout(dropout),
            nn.ConvTranspose1d(narrow, wide, kernel, stride=2, padding=pad, output_padding=1), nn.ReLU(),
            nn.ConvTranspose1d(wide, out_channels, kernel, padding=pad))
        for m in self.modules():
            if isinstance(m, (nn.Conv1d, nn.ConvTranspose1d)):
                nn.init.xavier_uniform_(m.weight)
                nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        t = x.shape[1]
        y = self.decoder(self.encoder(x.transpose(1, 2)))
        return y[..., :t].transpose(1, 2)
