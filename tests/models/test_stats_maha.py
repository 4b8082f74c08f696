"""stats-maha: its shrinkage, its distance and its per-band split."""
from __future__ import annotations

import pytest
import torch

from models.base import InputSpec
from models.errors import ScorerError
from models.registry import scorer_class
from models.stats_maha.net import ledoit_wolf, pool

SPEC = InputSpec(frames=6, features=8)


def _scorer(**kw):
    return scorer_class("stats-maha")(input_spec=SPEC, device="cpu", **kw)


def test_ledoit_wolf_equals_sklearn():
    from sklearn.covariance import ledoit_wolf as sk_ledoit_wolf

    g = torch.Generator().manual_seed(0)
    x = torch.randn(40, 12, generator=g, dtype=torch.float64) * torch.linspace(0.2, 3, 12, dtype=torch.float64)
    cov, shrink = ledoit_wolf(x)
    sk_cov, sk_shrink = sk_ledoit_wolf(x.numpy())
    assert shrink == pytest.approx(sk_shrink, rel=1e-9)
    torch.testing.assert_close(cov, torch.from_numpy(sk_cov))


def test_score_is_the_squared_distance_and_bands_sum_to_it():
    g = torch.Generator().manual_seed(1)
    train = torch.randn(200, 6, 8, generator=g)
    scorer = _scorer(shrinkage=0.3, target="diagonal")
    scorer.fit(train)
    x = torch.randn(5, 6, 8, generator=g) + 1.0
    score, per_band = scorer.score_detail(x)
    d = pool(x, "mean") - scorer.module.mean
    expected = torch.einsum("bi,ij,bj->b", d, scorer.module.precision, d)
    torch.testing.assert_close(score, expected, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(per_band.sum(dim=1), score, rtol=1e-5, atol=1e-5)


def test_mean_std_statistics_fold_back_into_bands():
    scorer = _scorer(statistics="mean_std", shrinkage=0.5)
    scorer.fit(torch.randn(100, 6, 8))
    score, per_band = scorer.score_detail(torch.randn(3, 6, 8))
    assert scorer.module.mean.shape == (16,) and per_band.shape == (3, 8)
    torch.testing.assert_close(per_band.sum(dim=1), score, rtol=1e-5, atol=1e-5)


def test_cross_validation_over_clips_shrinks_more_when_clips_differ():
    """Spans of one clip alike, clips apart: the clip-grouped choice shrinks harder than the
    one that sees every span as independent (contiguous blocks of one clip each are the
    same folds here, so compare with many tiny folds inside clips instead)."""
    g = torch.Generator().manual_seed(2)
    clips = [torch.randn(1, 1, 8, generator=g) * 3 + 0.1 * torch.randn(40, 6, 8, generator=g)
             for _ in range(8)]
    x = torch.cat(clips)
    ids = torch.arange(8).repeat_interleave(40)
    by_clip = _scorer(folds=8)
    rep = by_clip.fit(x, clip_ids=ids)
    mixed = _scorer(folds=8)
    rep_mixed = mixed.fit(x, clip_ids=torch.arange(len(x)) % 8)  # every fold holds every clip
    assert rep.extra["cv_folds"] == 8
    assert rep.extra["shrinkage"] > rep_mixed.extra["shrinkage"]


def test_bad_settings_are_named():
    for kw, word in [({"statistics": "median"}, "statistics"), ({"shrinkage": 2.0}, "shrinkage"),
                     ({"target": "ones"}, "target"), ({"folds": 1}, "folds")]:
        with pytest.raises(ScorerError, match=word):
            _scorer(**kw)
    with pytest.raises(ScorerError, match="normal windows only"):
        _scorer().fit(torch.randn(20, 6, 8), labels=torch.zeros(20))
    with pytest.raises(ScorerError, match="too few"):
        _scorer().fit(torch.randn(20, 6, 8), clip_ids=torch.zeros(20, dtype=torch.long))


@pytest.mark.parametrize("statistics, dims", [("max", 8), ("max_mean", 16)])
def test_peak_statistics_pool_the_loudest_frame_and_fold_back_into_bands(statistics, dims):
    g = torch.Generator().manual_seed(3)
    x = torch.randn(4, 6, 8, generator=g)
    pooled = pool(x, statistics)
    torch.testing.assert_close(pooled[:, :8], x.amax(dim=1))
    if statistics == "max_mean":
        torch.testing.assert_close(pooled[:, 8:], x.mean(dim=1))
    scorer = _scorer(statistics=statistics, shrinkage=0.5)
    scorer.fit(torch.randn(100, 6, 8, generator=g))
    score, per_band = scorer.score_detail(x)
    assert scorer.module.mean.shape == (dims,) and per_band.shape == (4, 8)
    torch.testing.assert_close(per_band.sum(dim=1), score, rtol=1e-5, atol=1e-5)
    # a peak in one band moves that band's share most
    peaked = x.clone()
    peaked[:, 2, 5] += 8.0
    assert (scorer.score_detail(peaked)[1].argmax(dim=1) == 5).all()
