"""The weakly-supervised autoencoder: stage 1 alone, stage 2 on labelled anomalies (the
``--weak`` training path: tests/monitor/training/test_ws_ae_training.py)."""
from __future__ import annotations

import pytest
import torch

from models.base import InputSpec
from models.errors import ScorerError
from models.ws_ae import WeaklySupervisedAEScorer

SPEC = InputSpec(frames=4, features=16)


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _windows(n: int, seed: int, bump: float = 0.0) -> torch.Tensor:
    """Normal windows; ``bump`` raises features 10-12 (a fault in a few bands)."""
    g = torch.Generator().manual_seed(seed)
    x = torch.sin(torch.linspace(0, 6.28, SPEC.features)).repeat(SPEC.frames, 1)
    x = x + 0.3 * torch.randn(n, SPEC.frames, SPEC.features, generator=g)
    x[..., 10:13] += bump
    return x


def _scorer(**kw) -> WeaklySupervisedAEScorer:
    params = {"epochs": 40, "stage2_epochs": 40, "batch_size": 64, "patience": 10, **kw}
    return WeaklySupervisedAEScorer(input_spec=SPEC, device="cpu", seed=0, **params)


def test_stage_one_only_without_labels_fits_the_margin():
    s = _scorer()
    rep = s.fit(_windows(256, 1))
    assert rep.extra["stages"] == 1 and "stage2" not in rep.extra
    margin = s.params()["margin"]
    assert margin is not None and margin > 0
    # the margin is the paper's gamma ppf(0.99) of training scores: most training vectors lie below
    assert (s.score(_windows(256, 1)) < margin).float().mean() > 0.9


def test_stage_two_pushes_labelled_faults_past_the_margin_and_generalises():
    normals, faults = _windows(256, 1), _windows(16, 2, bump=0.5)
    unseen = _windows(64, 3, bump=0.5)
    s1 = _scorer()
    s1.fit(normals)
    before = s1.score(unseen)
    s2 = _scorer()
    x = torch.cat([normals, faults])
    labels = torch.cat([torch.zeros(256), torch.ones(16)])
    rep = s2.fit(x, labels=labels)
    st2 = rep.extra["stage2"]
    assert rep.extra["stages"] == 2 and st2["n_anomaly"] == 16
    assert st2["anomalies_over_margin_after"] >= 0.9 > st2["anomalies_over_margin_before"]
    margin = s2.params()["margin"]
    assert margin == s1.params()["margin"]  # same seed, same stage 1
    # more unseen faults of the same kind now score past the margin; normals stay below it
    caught_before = (before > margin).float().mean()
    caught_after = (s2.score(unseen) > margin).float().mean()
    print(f"unseen faults over the margin: {caught_before:.2f} -> {caught_after:.2f}")
    assert caught_after >= caught_before + 0.1  # measured 0.38 -> 0.53
    assert (s2.score(_windows(128, 4)) < margin).float().mean() > 0.9


def test_stage_two_needs_stage_one_and_label_count_must_match():
    s = _scorer()
    with pytest.raises(ScorerError, match="stage-1 margin"):
        s.fit_weak(_windows(16, 1), _windows(4, 2, bump=1.0))
    with pytest.raises(ScorerError, match="labels for"):
        s.fit(_windows(16, 1), labels=torch.ones(3))


def test_vectors_fit_the_alerting_window():
    a = WeaklySupervisedAEScorer.audio_defaults
    span = (a["frames"] - 1) * a["hop_length"] + a["n_fft"]
    assert span == 17920 and span <= a["window_s"] * 16000
    # every vector lies wholly inside at least one window (no vector left out of alerting)
    assert a["window_s"] * 16000 - span >= a["hop_s"] * 16000
