"""condition-clf: conditions learnt from names, scored against the stream's own condition."""
from __future__ import annotations

import pytest
import torch

from models.base import InputSpec
from models.condition_clf.scorer import PSEUDO, WEAK
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


def test_fast_path_scores_and_explains_as_the_plain_module():
    scorer = _trained()
    x = torch.cat([_patches(5, 2, 9), _patches(5, 12, 10)])
    bound = scorer.with_condition("pat_00")
    s_fast, c_fast = bound.score_detail(x)
    bound.fast = False
    s_plain, c_plain = bound.score_detail(x)
    torch.testing.assert_close(s_fast, s_plain, rtol=1e-5, atol=0)
    torch.testing.assert_close(c_fast, c_plain, rtol=1e-4, atol=1e-7)


def test_contributions_sum_to_the_score_and_name_the_band_that_moved():
    scorer = _trained().with_condition("pat_00")
    normal = _patches(20, 2, 11)
    moved = normal.clone()
    moved[:, :, 9] += 6.0  # a band neither condition is loud in
    s, c = scorer.score_detail(moved)
    assert c.shape == (20, SPEC.features) and (c >= 0).all()
    torch.testing.assert_close(c.sum(dim=1), s, rtol=1e-4, atol=1e-6)
    assert s.mean() > scorer.score(normal).mean()
    # the explanation's top bands (summed over the patches, as an event sums its windows)
    top = torch.argsort(c.sum(dim=0), descending=True)[:3].tolist()
    assert 9 in top, top


def test_a_clip_looks_most_like_the_condition_it_sounds_like():
    scorer = _trained()
    assert scorer.looked_most_like(_patches(10, 12, 12))[0] == "pat_01"
    name, dist = scorer.with_condition("pat_01").looked_most_like(_patches(10, 2, 13))
    assert name == "pat_00" and set(dist) == {"pat_00", "pat_01"} and dist["pat_00"] < dist["pat_01"]


def test_labelled_faults_are_one_more_class_and_random_crops_need_clip_ids():
    cls = scorer_class("condition-clf")
    scorer = cls(input_spec=SPEC, device="cpu", seed=0, **cls.test_params())
    x = torch.cat([_patches(30, 2, 14), _patches(30, 12, 15), _patches(10, 6, 16)])
    labels = torch.cat([torch.zeros(60), torch.ones(10)])
    ids = torch.arange(70) // 10  # 7 "clips" of 10 consecutive vectors
    report = scorer.fit(x, labels=labels, conditions=["pat_00"] * 30 + ["pat_01"] * 30, clip_ids=ids)
    assert report.extra["classes"] == ["pat_00", "pat_01", WEAK]
    assert report.extra["fault_patches"] == 10 and report.extra["crops"] == "random" and report.extra["clips"] == 7
    assert scorer.known_conditions == ["pat_00", "pat_01"]
    with pytest.raises(ScorerError, match="must follow the normal ones"):
        cls(input_spec=SPEC, device="cpu", **cls.test_params()).fit(
            x, labels=torch.cat([torch.ones(10), torch.zeros(60)]), conditions=["pat_00"] * 60)
    with pytest.raises(ScorerError, match="weak is none"):
        cls(input_spec=SPEC, device="cpu", weak="none", **cls.test_params()).fit(
            x, labels=labels, conditions=["pat_00"] * 30 + ["pat_01"] * 30)
