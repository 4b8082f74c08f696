"""The telemanom-style LSTM forecaster as a pure ``nn.Module``.

Two stacked LSTM layers (80 units, dropout 0.3 between and after them) read a window step by
step; after every step a dense head forecasts the next ``horizon`` readings of every channel.
telemanom trains one window -> one forecast; forecasting after *every* step is the same
network read as sequence-to-sequence, so one window trains (and scores) many forecasts.
"""
from __future__ import annotations

import torch
from torch import nn


class LstmForecaster(nn.Module):
    """``[B, T, F]`` -> forecasts ``[B, T, horizon, F]``: ``out[:, i, k]`` predicts ``x[:, i+1+k]``."""

    def __init__(self, n_features: int, *, hidden: int = 80, layers: int = 2, dropout: float = 0.3,
                 horizon: int = 10) -> None:
        super().__init__()
        self.n_features, self.horizon = n_features, horizon
        self.lstm = nn.LSTM(n_features, hidden, num_layers=layers, batch_first=True,
                            dropout=dropout if layers > 1 else 0.0)
        self.drop = nn.Dropout(dropout)
        self.head = nn.Linear(hidden, horizon * n_features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, _ = self.lstm(x)
        out = self.head(self.drop(h))
        return out.reshape(x.shape[0], x.shape[1], self.horizon, self.n_features)
