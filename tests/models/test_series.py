"""Channel combinations of the sensor forecasters: the multivariate EWMA chart (``mewma``)."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from models.arima import ArimaScorer
from models.base import InputSpec
from models.errors import ScorerError
from models.series import ewma_last, mewma_precision, window_score


def _errors(rng: np.random.Generator, n: int, s: int) -> torch.Tensor:
    """Errors of two channels that move together (correlation ~0.99), ``[n, s, 2]``."""
    common = rng.standard_normal((n, s, 1))
    return torch.as_tensor(np.concatenate([common, common], axis=2) + 0.1 * rng.standard_normal((n, s, 2)),
                           dtype=torch.float32)


def test_mewma_with_identity_precision_is_the_mean_square_of_the_smoothed_errors():
    e = _errors(np.random.default_rng(0), 7, 12)
    score, parts = window_score(e, 4, "mewma", torch.eye(2))
    z = ewma_last(e, 4)
    torch.testing.assert_close(score, z.square().mean(dim=1))
    torch.testing.assert_close(parts, z.square() / 2)
    with pytest.raises(ScorerError, match="precision"):
        window_score(e, 4, "mewma", None)


def test_mewma_scores_channels_that_stop_agreeing_and_the_mean_does_not():
    rng = np.random.default_rng(1)
    precision = mewma_precision(_errors(rng, 2000, 12), 4)
    together, apart = torch.zeros(1, 12, 2), torch.zeros(1, 12, 2)
    together[0, -4:] = 1.5  # both channels off by the same amount: usual for this pair
    apart[0, -4:, 0], apart[0, -4:, 1] = 1.5, -1.5  # same sizes, opposite signs: never seen
    mean_t, mean_a = window_score(together, 4, "mean")[0], window_score(apart, 4, "mean")[0]
    torch.testing.assert_close(mean_t, mean_a)
    (mw_t, _), (mw_a, parts) = window_score(together, 4, "mewma", precision), window_score(apart, 4, "mewma", precision)
    assert mw_a > 20 * mw_t
    torch.testing.assert_close(parts.sum(dim=1), mw_a)  # both channels share the explanation


def test_arima_mewma_learns_the_precision_and_stays_batched_equal_one_by_one():
    rng = np.random.default_rng(2)
    n = 1500
    e = rng.standard_normal(n)
    y = np.zeros(n)
    for t in range(1, n):
        y[t] = 0.7 * y[t - 1] + e[t]
    two = np.stack([y, 2.0 * y + 0.05 * rng.standard_normal(n)], axis=1)  # a coupled pair
    x = torch.as_tensor(two, dtype=torch.float32)
    s = ArimaScorer(input_spec=InputSpec(frames=30, features=2), device="cpu", max_p=1, max_q=0,
                    select="fixed", combine="mewma", span=5)
    s.fit(x[:1000].unfold(0, 30, 1).transpose(1, 2))
    assert not torch.equal(s.module.precision, torch.eye(2))  # learned, and saved with the state
    test = x[1000:].unfold(0, 30, 1).transpose(1, 2).contiguous()
    batched = s.score(test)
    torch.testing.assert_close(torch.cat([s.score(w[None]) for w in test[:25]]), batched[:25])
    broken = test[-1:].clone()
    broken[0, -5:, 1] -= 1.0  # the second channel leaves its partner by ~ one residual sd
    assert float(s.score(broken)) > 10 * float(batched.quantile(0.99))


def test_a_model_saved_before_the_precision_buffer_loads_and_scores_the_same():
    rng = np.random.default_rng(3)
    x = torch.as_tensor(rng.standard_normal((300, 2)).cumsum(0) * 0.1, dtype=torch.float32)
    windows = x.unfold(0, 30, 1).transpose(1, 2).contiguous()
    s = ArimaScorer(input_spec=InputSpec(frames=30, features=2), device="cpu", max_p=1, max_q=0, select="fixed")
    s.fit(windows)
    old = {k: v for k, v in s.state_dict().items() if k != "precision"}  # a folder from 2026-12-01
    again = ArimaScorer(input_spec=InputSpec(frames=30, features=2), device="cpu", max_p=1, max_q=0, select="fixed")
    again.load_state_dict(old)
    torch.testing.assert_close(again.score(windows), s.score(windows), rtol=0, atol=0)
    with pytest.raises(RuntimeError, match="scale"):  # other missing buffers still fail loudly
        again.load_state_dict({k: v for k, v in old.items() if k != "scale"})
