"""TadGAN (Geiger et al. 2020) as pure ``nn.Module``s, ported to PyTorch from the published
architecture (Orion's ``TadGAN`` primitive, keras): an encoder E: x -> z, a generator
G: z -> x, a critic on windows (critic_x) and a critic on latent codes (critic_z).

- E: bidirectional LSTM(100) over the window -> flatten -> dense to ``latent``.
- G: dense to ceil(T/2) steps x 1 -> bidirectional LSTM(64) -> upsample x2 (crop to T)
  -> bidirectional LSTM(64) -> time-distributed dense to F channels -> tanh (inputs live
  in [-1, 1]). Orion's LSTMs have dropout 0.2 inside the recurrence (keras
  ``recurrent_dropout``); torch's LSTM has no recurrent dropout, so dropout 0.2 is applied
  to the LSTM outputs instead.
- critic_x: 4 x (Conv1D 64 filters, kernel 5, leaky ReLU 0.2, dropout 0.25) -> flatten ->
  dense 1. Convolutions are ``same``-padded (keras' default is ``valid``) so that short
  windows work; for T = 100 this only adds border positions.
- critic_z: dense 100, leaky ReLU, dropout 0.2, dense 100, leaky ReLU, dropout 0.2, dense 1.
"""
from __future__ import annotations

import torch
from torch import nn


class Encoder(nn.Module):
    def __init__(self, frames: int, features: int, *, units: int = 100, latent: int = 20) -> None:
        super().__init__()
        self.lstm = nn.LSTM(features, units, batch_first=True, bidirectional=True)
        self.dense = nn.Linear(frames * 2 * units, latent)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, _ = self.lstm(x)
        return self.dense(h.flatten(1))


class Generator(nn.Module):
    def __init__(self, frames: int, features: int, *, units: int = 64, latent: int = 20,
                 dropout: float = 0.2) -> None:
        super().__init__()
        self.frames, self.half = frames, (frames + 1) // 2
        self.dense = nn.Linear(latent, self.half)
        self.lstm1 = nn.LSTM(1, units, batch_first=True, bidirectional=True)
        self.lstm2 = nn.LSTM(2 * units, units, batch_first=True, bidirectional=True)
        self.drop = nn.Dropout(dropout)
        self.out = nn.Linear(2 * units, features)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        h = self.dense(z).unsqueeze(-1)                       # [B, T/2, 1]
        h, _ = self.lstm1(h)
        h = self.drop(h).repeat_interleave(2, dim=1)[:, :self.frames]  # UpSampling1D(2)
        h, _ = self.lstm2(h)
        return torch.tanh(self.out(self.drop(h)))


class CriticX(nn.Module):
    def __init__(self, frames: int, features: int, *, filters: int = 64, kernel: int = 5,
                 dropout: float = 0.25) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        n = features
        for _ in range(4):
            layers += [nn.Conv1d(n, filters, kernel, padding="same"), nn.LeakyReLU(0.2), nn.Dropout(dropout)]
            n = filters
        self.conv = nn.Sequential(*layers)
        self.dense = nn.Linear(filters * frames, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.dense(self.conv(x.transpose(1, 2)).flatten(1)).squeeze(-1)


class CriticZ(nn.Module):
    def __init__(self, latent: int = 20, *, units: int = 100, dropout: float = 0.2) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(latent, units), nn.LeakyReLU(0.2), nn.Dropout(dropout),
                                 nn.Linear(units, units), nn.LeakyReLU(0.2), nn.Dropout(dropout),
                                 nn.Linear(units, 1))

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z).squeeze(-1)


class TadGAN(nn.Module):
    """The four networks plus the buffers scoring needs (input range, score statistics)."""

    def __init__(self, frames: int, features: int, *, latent: int = 20, encoder_units: int = 100,
                 generator_units: int = 64) -> None:
        super().__init__()
        self.encoder = Encoder(frames, features, units=encoder_units, latent=latent)
        self.generator = Generator(frames, features, units=generator_units, latent=latent)
        self.critic_x = CriticX(frames, features)
        self.critic_z = CriticZ(latent)
        # inputs are mapped to [-1, 1] with the training range (Orion's MinMaxScaler step)
        self.register_buffer("x_min", torch.zeros(features))
        self.register_buffer("x_max", torch.ones(features))
        # score statistics on the training windows: reconstruction mean/std, critic centre/std
        self.register_buffer("score_stats", torch.tensor([0.0, 1.0, 0.0, 1.0]))

    def scale(self, x: torch.Tensor) -> torch.Tensor:
        span = (self.x_max - self.x_min).clamp_min(1e-6)
        return 2.0 * (x - self.x_min) / span - 1.0

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Scaled windows ``[B, T, F]`` -> (reconstruction ``[B, T, F]``, critic ``[B]``)."""
        return self.generator(self.encoder(x)), self.critic_x(x)
