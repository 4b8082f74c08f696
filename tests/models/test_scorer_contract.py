"""Every registered scorer goes through fit -> score -> save -> load -> same scores."""
from __future__ import annotations

import pytest
import torch

from models.artifacts import read_model, save_model, split_state
from models.base import InputSpec
from models.errors import ScorerError, UnknownScorerError
from models.registry import SCORERS, scorer_class

SPEC = InputSpec(frames=5, features=16)


def _windows(n: int, seed: int, shift: float = 0.0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    base = torch.sin(torch.linspace(0, 6.28, SPEC.features)).repeat(SPEC.frames, 1)
    return base + shift + 0.1 * torch.randn(n, SPEC.frames, SPEC.features, generator=g)


def _make(name: str, seed: int = 0):
    cls = scorer_class(name)
    return cls(input_spec=SPEC, device="cpu", seed=seed, **cls.test_params())


@pytest.fixture(params=sorted(SCORERS))
def fitted(request):
    scorer = _make(request.param)
    report = scorer.fit(_windows(256, 1))
    assert report.n_windows == 256 and report.epochs >= 1
    return scorer


def test_score_shape_and_batch_consistency(fitted):
    batch = _windows(9, 2)
    s = fitted.score(batch)
    assert s.shape == (9,) and torch.isfinite(s).all()
    one_by_one = torch.cat([fitted.score(batch[i:i + 1]) for i in range(9)])
    torch.testing.assert_close(s, one_by_one, rtol=1e-5, atol=1e-6)


def test_score_is_pure_and_tells_inputs_apart(fitted):
    batch = _windows(16, 3)
    a, b = fitted.score(batch), fitted.score(batch)
    torch.testing.assert_close(a, b, rtol=0, atol=0)
    assert not torch.allclose(fitted.score(_windows(16, 3, shift=3.0)), a)


def test_far_off_inputs_score_higher(fitted):
    normal = fitted.score(_windows(64, 4)).mean()
    odd = fitted.score(_windows(64, 4, shift=5.0)).mean()
    assert odd > normal


def test_save_load_gives_identical_scores(fitted, tmp_path):
    state = {f"scorer.{k}": v for k, v in fitted.state_dict().items()}
    meta = {"scorer": fitted.name, "model_version": "v1", "input": SPEC.to_dict(),
            "features": {}, "threshold": None, "params": fitted.params()}
    save_model(tmp_path, meta=meta, state=state)
    _, meta2, state2 = read_model(tmp_path)
    again = scorer_class(meta2["scorer"])(input_spec=InputSpec(**meta2["input"]), device="cpu",
                                          **meta2["params"])
    again.load_state_dict(split_state(state2, "scorer"))
    batch = _windows(8, 5)
    torch.testing.assert_close(again.score(batch), fitted.score(batch), rtol=0, atol=0)


def test_seeded_training_is_reproducible():
    for name in SCORERS:
        a, b = _make(name, seed=3), _make(name, seed=3)
        a.fit(_windows(128, 6))
        b.fit(_windows(128, 6))
        batch = _windows(4, 7)
        torch.testing.assert_close(a.score(batch), b.score(batch), rtol=0, atol=0)


def test_wrong_shapes_and_bad_params_are_clear_errors():
    for name in SCORERS:
        scorer = _make(name)
        with pytest.raises(ScorerError, match=r"expected \[B, 5, 16\]"):
            scorer.score(torch.zeros(2, 4, 16))
        with pytest.raises(ScorerError, match="NaN"):
            scorer.fit(torch.full((8, 5, 16), float("nan")))
        with pytest.raises(ScorerError, match="unknown parameter"):
            scorer_class(name)(input_spec=SPEC, device="cpu", not_a_param=1)


def test_unknown_scorer_lists_the_known_ones():
    with pytest.raises(UnknownScorerError) as exc:
        scorer_class("nope")
    for name in SCORERS:
        assert name in str(exc.value)
