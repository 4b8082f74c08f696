"""LSTM forecaster: learns a periodic signal, flags a reading it cannot forecast."""
from __future__ import annotations

import math

import pytest
import torch

from models.base import InputSpec
from models.lstm_forecast import LstmForecastScorer


def _sines(n: int, t: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    phase = torch.rand(n, 1, generator=g) * 2 * math.pi
    steps = torch.arange(t).float()
    a = torch.sin(phase + steps * 0.4)
    b = torch.cos(phase + steps * 0.4)
    return torch.stack([a, b], dim=-1) + 0.02 * torch.randn(n, t, 2, generator=g)


@pytest.mark.parametrize("combine", ["mean", "mewma"])
def test_forecaster_learns_and_flags_unforecastable_readings(combine):
    torch.set_num_threads(1)
    spec = InputSpec(frames=24, features=2)
    s = LstmForecastScorer(input_spec=spec, device="cpu", hidden=24, context=8, horizon=3, span=1,
                           epochs=30, batch_size=64, combine=combine)
    report = s.fit(_sines(512, 24, 0))
    assert report.final_loss < 0.05
    test = _sines(32, 24, 1)
    normal, per_ch = s.score_detail(test)
    spiked = test.clone()
    spiked[:, -1, 1] += 1.5
    odd, per_ch_odd = s.score_detail(spiked)
    assert (odd > normal).float().mean() > 0.95
    assert (per_ch_odd.argmax(dim=1) == 1).all()  # the explanation names the spiked channel
    assert abs(float(normal.mean()) - 1.0) < 0.5  # errors are in units of the training error
    torch.testing.assert_close(torch.cat([s.score(w[None]) for w in spiked[:8]]), odd[:8])


def test_window_layout_adapts_to_short_windows():
    s = LstmForecastScorer(input_spec=InputSpec(frames=5, features=3), device="cpu", hidden=4)
    assert s.first_position == 2 and s.steps == 4  # at most half the window warms up
    s2 = LstmForecastScorer(input_spec=InputSpec(frames=260, features=3), device="cpu", hidden=4)
    assert s2.first_position == 50 and s2.steps == 10
    s3 = LstmForecastScorer(input_spec=InputSpec(frames=64, features=3), device="cpu", hidden=4)
    assert s3.first_position == 32
