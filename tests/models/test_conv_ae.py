"""conv-ae: the SKAB Conv-AE's shapes, its shared output trace, its score and its early stop."""
from __future__ import annotations

import pytest
import torch

from models.base import InputSpec
from models.conv_ae.net import ConvAutoencoder
from models.errors import ScorerError
from models.registry import scorer_class


@pytest.mark.parametrize("t", [5, 60, 61, 100])
def test_any_window_length_comes_back_whole(t):
    x = torch.randn(3, t, 8)
    assert ConvAutoencoder(8)(x).shape == (3, t, 1)
    assert ConvAutoencoder(8, out_channels=8)(x).shape == (3, t, 8)


def test_score_is_per_channel_mean_absolute_error_summed():
    scorer = scorer_class("conv-ae")(input_spec=InputSpec(frames=60, features=4), device="cpu")
    x = torch.randn(2, 60, 4)
    score, per_channel = scorer.score_detail(x)
    recon = scorer.module(x)  # [2, 60, 1], one trace broadcast against every channel
    torch.testing.assert_close(per_channel, (x - recon).abs().mean(dim=1))
    torch.testing.assert_close(score, per_channel.sum(dim=1))


def test_early_stopping_ends_training_when_validation_stops_improving():
    g = torch.Generator().manual_seed(0)
    windows = torch.randn(200, 20, 3, generator=g)  # noise: nothing to learn, the held-out loss stalls
    scorer = scorer_class("conv-ae")(input_spec=InputSpec(frames=20, features=3), device="cpu",
                                     epochs=200, patience=2)
    report = scorer.fit(windows)
    assert report.epochs < 200 and report.extra["validation_loss"] is not None


def test_bad_settings_are_named():
    spec = InputSpec(frames=20, features=3)
    with pytest.raises(ScorerError, match="output"):
        scorer_class("conv-ae")(input_spec=spec, output="both")
    with pytest.raises(ScorerError, match="odd"):
        scorer_class("conv-ae")(input_spec=spec, kernel=6)
