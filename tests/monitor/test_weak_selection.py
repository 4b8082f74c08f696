"""ws-ae's stage 2 chosen by cross-validation over the labelled clips: the window AUC, the
record in meta.json, stage 1 kept when the labels teach nothing new, and the margin applied."""
from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf

from monitor.training import TrainOptions, train_audio
from monitor.weak_selection import window_auc

from .conftest import FAST_WS_AE

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_window_auc_is_the_mann_whitney_statistic_with_ties_halved():
    from sklearn.metrics import roc_auc_score

    rng = np.random.default_rng(0)
    pos, neg = rng.integers(0, 6, 40).astype(float), rng.integers(0, 5, 70).astype(float)
    expected = roc_auc_score(np.r_[np.ones(40), np.zeros(70)], np.r_[pos, neg])
    assert window_auc(pos.tolist(), neg.tolist()) == pytest.approx(expected)


def _selection(meta: dict) -> dict:
    return meta["training"]["fit"]["extra"]["selection"]


def test_training_records_the_cross_validation_and_applies_the_chosen_margin(pump_data, tmp_path):
    opts = TrainOptions(scorer="ws-ae", device="cpu", params=FAST_WS_AE, holdout=0.25)
    _, meta = train_audio(pump_data / "train", tmp_path / "m", opts, weak=pump_data / "faint")
    sel, fit = _selection(meta), meta["training"]["fit"]["extra"]
    assert set(sel["cv_window_auc"]) == {"stage1", "x1", "x2", "x4"}
    assert sorted(n for fold in sel["folds"] for n in fold) == sorted(p.name for p in (pump_data / "faint").iterdir())
    assert len(sel["folds"]) == 3 and all(len(v) == 3 for v in sel["cv_window_auc_per_fold"].values())
    print(f"\nfaint fault: {sel['reason']}")
    scale = sel["chosen_margin_scale"]  # measured: x4, window AUC 1.000 against 0.818
    assert scale is not None, sel["reason"]
    best = max(v for k, v in sel["cv_window_auc"].items() if k != "stage1")
    assert sel["cv_window_auc"][f"x{scale:g}"] == best > sel["cv_window_auc"]["stage1"]
    assert meta["training"]["stage"].startswith("stage 1 + stage 2 (3 labelled")
    base = fit["stage1"]["margin"]  # the stage-1 gamma ppf(r) at margin_scale 1
    assert fit["stage2"]["margin"] == pytest.approx(base * scale) == pytest.approx(meta["params"]["margin"])
    assert meta["params"]["margin_scale"] == scale


def test_stage_one_is_kept_when_it_already_ranks_every_labelled_window_first(pump_data, tmp_path):
    """A fault stage 1 already separates perfectly: no margin can beat window AUC 1.0, so the
    model is stage 1 alone - the same weights as training without labels."""
    from workers.model import load_model
    from workers.offline import score_clips

    opts = TrainOptions(scorer="ws-ae", device="cpu", params=FAST_WS_AE, holdout=0.25)
    folder, meta = train_audio(pump_data / "train", tmp_path / "ws", opts, weak=pump_data / "loud")
    sel = _selection(meta)
    assert sel["cv_window_auc"]["stage1"] == 1.0 and sel["chosen_margin_scale"] is None
    assert meta["training"]["stage"].startswith("stage 1 only: stage 1 kept")
    assert meta["training"]["weak_clips"]  # still recorded: evaluation must refuse them
    plain, _ = train_audio(pump_data / "train", tmp_path / "s1", opts)
    clip = [("c", sf.read(next((pump_data / "loud").iterdir()), dtype="float32")[0])]
    a, b = (score_clips(load_model(f, device="cpu"), clip)[0].clip_score for f in (folder, plain))
    assert a == pytest.approx(b, rel=1e-6)
