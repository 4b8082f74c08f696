"""ARIMA scorer: the vectorised filter equals statsmodels' one-step predictions, orders by AIC."""
from __future__ import annotations

import warnings

import numpy as np
import torch

from models.arima import ArimaScorer
from models.base import InputSpec


def _ar2(n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    e, y = rng.standard_normal(n), np.zeros(n)
    for t in range(2, n):
        y[t] = 0.6 * y[t - 1] - 0.3 * y[t - 2] + e[t]
    return y + 2.0


def _windows(y: np.ndarray, t: int) -> torch.Tensor:
    x = torch.as_tensor(y, dtype=torch.float32)
    return x.unfold(0, t, 1).unsqueeze(-1)  # [N, T, 1], hop 1


def test_filter_matches_statsmodels_one_step_predictions():
    from statsmodels.tsa.arima.model import ARIMA

    y = _ar2(600, 0)
    s = ArimaScorer(input_spec=InputSpec(frames=40, features=1), device="cpu",
                    max_p=2, max_q=0, select="fixed", method="statespace")
    report = s.fit(_windows(y[:500], 40))
    assert report.extra["orders"] == [[2, 0, 0]] and report.extra["segments"] == 1
    m = s.module
    np.testing.assert_allclose(m.ar[0].numpy(), [0.6, -0.3], atol=0.1)
    # statsmodels with the same (fixed) parameters, advanced over new data without refitting
    params = np.r_[m.ar[0].double().numpy(), 1.0]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = ARIMA(y[500:] - m.mu[0].item(), order=(2, 0, 0), trend="n").filter(params)
    sm_pred = res.predict()[2:] + m.mu[0].item()
    ours = y[502:] - m(torch.as_tensor(y[500:], dtype=torch.float32)[None, :, None])[0, :, 0].double().numpy()
    np.testing.assert_allclose(ours, sm_pred, rtol=0, atol=1e-4)


def test_aic_order_selection_and_scores():
    y = _ar2(800, 1)
    s = ArimaScorer(input_spec=InputSpec(frames=30, features=2), device="cpu", max_p=3, max_q=1, span=1)
    two = np.stack([y, np.full_like(y, 5.0)], axis=1)  # the second channel is constant
    report = s.fit(torch.as_tensor(two, dtype=torch.float32).unfold(0, 30, 1).transpose(1, 2))
    p, _, q = report.extra["orders"][0]
    assert p >= 2 and report.extra["orders"][1] == [0, 0, 0]
    normal = torch.as_tensor(two[-30:], dtype=torch.float32)[None]
    spiked = normal.clone()
    spiked[0, -1, 0] += 8.0
    s_n, c_n = s.score_detail(normal)
    s_a, c_a = s.score_detail(spiked)
    assert s_a > 3 * s_n and int(c_a[0].argmax()) == 0
    stuck = normal.clone()
    stuck[0, -3:, 1] = 9.0  # the constant channel moves: its error explains the score
    assert int(s.score_detail(stuck)[1][0].argmax()) == 1


def test_auto_season_finds_the_period_and_differences_it_away():
    rng = np.random.default_rng(2)
    t = np.arange(3000)
    y = np.sin(2 * np.pi * t / 48) + 0.1 * rng.standard_normal(len(t))
    s = ArimaScorer(input_spec=InputSpec(frames=80, features=1), device="cpu", max_p=2, max_q=0,
                    season="auto", span=1)
    report = s.fit(_windows(y[:2000], 80))
    assert report.extra["season"] == 48
    normal = _windows(y[2000:2400], 80)[::40]
    odd = normal.clone()
    odd[:, -1, 0] += 1.0
    assert (s.score(odd) > 3 * s.score(normal)).all()
    # saved and loaded like any buffer
    again = ArimaScorer(input_spec=InputSpec(frames=80, features=1), device="cpu", **s.params())
    again.load_state_dict(s.state_dict())
    torch.testing.assert_close(again.score(normal), s.score(normal))
