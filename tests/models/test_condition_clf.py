"""condition-clf: conditions learnt from names, scored against the stream's own condition."""
from __future__ import annotations

import pytest
import torch

from models.base import InputSpec
from models.condition_clf.scorer import PSEUDO
from models.errors import ScorerError
from models.registry import scorer_class

SPEC = InputSpec(frames=8, features=16)


def _patches(n: int, band: int, seed: int) -> torch.Tensor:
    """Noise patches with a loud band at ``band``: one 'condition' per band."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, SPEC.frames, SPEC.features, generator=g)
    x[:, :, band] += 4.0
    return x


def _trained(**kw):
    scorer = scorer_class("condition-clf")(input_spec=SPEC, device="cpu", seed=0,
                                           **{**scorer_class("condition-clf").test_params(), "epochs": 8, **kw})
    x = torch.cat([_patches(60, 2, 1), _patches(60, 12, 2)])
    scorer.fit(x, conditions=["pat_00"] * 60 + ["pat_01"] * 60)
    return scorer


def test_a_patch_fits_its_own_condition_better_than_the_other():
    scorer = _trained()
    assert scorer.known_conditions == ["pat_00", "pat_01"]
    x = _patches(20, 2, 3)  # sounds like pat_00
    own = scorer.with_condition("pat_00").score(x).mean()
    other = scorer.with_condition("pat_01").score(x).mean()
    assert own < other


def test_the_condition_is_required_and_unknown_ones_are_named():
    scorer = _trained()
    with pytest.raises(ScorerError, match="condition must be given"):
        scorer.score(_patches(2, 2, 4))
    with pytest.raises(ScorerError, match=r"unknown condition 'pat_07'.*pat_00, pat_01"):
        scorer.with_condition("pat_07")


def test_binding_shares_the_weights_and_survives_save_and_load():
    scorer = _trained()
    bound = scorer.with_condition("pat_01")
    assert bound.module is scorer.module and scorer.condition is None
    again = scorer_class("condition-clf")(input_spec=SPEC, device="cpu", **scorer.params())
    again.load_state_dict(scorer.state_dict())
    x = _patches(4, 12, 5)
    torch.testing.assert_close(again.with_condition("pat_01").score(x), bound.score(x), rtol=0, atol=0)


def test_one_condition_gets_a_pseudo_class_and_exposure_a_class_of_its_own():
    scorer = scorer_class("condition-clf")(input_spec=SPEC, device="cpu", **scorer_class("condition-clf").test_params())
    report = scorer.fit(_patches(40, 2, 6), exposure=_patches(30, 12, 7))
    assert report.extra["classes"] == ["default", "exposure:other-machines"]
    assert scorer.known_conditions == ["default"]
    scorer.score(_patches(2, 2, 8))  # one known condition: no binding needed
    plain = scorer_class("condition-clf")(input_spec=SPEC, device="cpu", **scorer_class("condition-clf").test_params())
    assert plain.fit(_patches(40, 2, 6)).extra["classes"] == ["default", PSEUDO]
    none = scorer_class("condition-clf")(input_spec=SPEC, device="cpu", pseudo="none")
    with pytest.raises(ScorerError, match="nothing to tell apart"):
        none.fit(_patches(40, 2, 6))


def test_a_route_binds_its_condition_at_load_and_refuses_a_missing_or_unknown_one():
    from workers.conditioned import bind_condition
    from workers.model import AlertingWindow, LoadedModel

    model = LoadedModel(None, {}, None, _trained(), None, AlertingWindow())
    assert bind_condition(model, "pat_01").scorer.condition == 1
    with pytest.raises(ScorerError, match="condition must be given"):
        bind_condition(model, None)
    with pytest.raises(ScorerError, match="unknown condition 'pat_09'"):
        bind_condition(model, "pat_09")
    ae = scorer_class("ae")(input_spec=SPEC, device="cpu")
    plain = LoadedModel(None, {}, None, ae, None, AlertingWindow())
    assert bind_condition(plain, None) is plain
    with pytest.raises(ScorerError, match="knows no conditions"):
        bind_condition(plain, "pat_01")
