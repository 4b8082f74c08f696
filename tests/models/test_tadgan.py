"""TadGAN: the DTW error, the score combination, and a tiny training run that separates a spike."""
from __future__ import annotations

import math

import numpy as np
import torch

from models.base import InputSpec
from models.tadgan import TadGanScorer
from models.tadgan.scorer import dtw_distance


def _dtw_reference(a, b) -> float:
    n = len(a)
    d = np.full((n + 1, n + 1), np.inf)
    d[0, 0] = 0.0
    for i in range(1, n + 1):
        for j in range(1, n + 1):
            d[i, j] = abs(a[i - 1] - b[j - 1]) + min(d[i - 1, j], d[i, j - 1], d[i - 1, j - 1])
    return d[n, n]


def test_dtw_matches_the_textbook_recursion():
    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(3, 2, 7, generator=g), torch.randn(3, 2, 7, generator=g)
    got = dtw_distance(a, b)
    for i in range(3):
        for j in range(2):
            assert math.isclose(float(got[i, j]), _dtw_reference(a[i, j].tolist(), b[i, j].tolist()),
                                rel_tol=1e-5)
    assert float(dtw_distance(a, a).abs().max()) == 0.0


def test_tiny_training_separates_a_spike_for_every_error_kind():
    torch.set_num_threads(1)
    g = torch.Generator().manual_seed(0)
    steps = torch.arange(16).float()
    phase = torch.rand(300, 1, generator=g) * 6.28
    x = torch.sin(phase + 0.5 * steps).unsqueeze(-1) + 0.05 * torch.randn(300, 16, 1, generator=g)
    test = x[:40].clone()
    odd = test.clone()
    odd[:, -3:, 0] += 2.5
    for kind in ("point", "area", "dtw"):
        s = TadGanScorer(input_spec=InputSpec(frames=16, features=1), device="cpu", latent=4,
                         encoder_units=16, generator_units=16, epochs=4, batch_size=32, n_critics=2,
                         rec_steps=4, rec_error=kind)
        s.fit(x)
        assert (s.score(odd) > s.score(test)).float().mean() > 0.9, kind
