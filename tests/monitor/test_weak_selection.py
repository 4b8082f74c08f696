"""ws-ae's stage 2 chosen by cross-validation over the labelled clips: the window AUC, the
record in meta.json, stage 1 kept when the labels teach nothing new, and the margin applied."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from monitor.training import TrainOptions, train_audio
from monitor.weak_selection import window_auc

FAST = {"epochs": 15, "stage2_epochs": 10, "batch_size": 32, "patience": 5}


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _write(folder: Path, clips) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name, a in clips:
        sf.write(folder / name, a, 16000, subtype="PCM_16")
    return folder


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    """8 normal pump clips; faint (stage 1 ranks them ~0.8) and loud harmonic faults, 3 clips each."""
    from monitor.synth import inject_fault, machine_sound

    root = tmp_path_factory.mktemp("sel")
    _write(root / "train", [(f"normal_id_00_{i:08d}.wav", machine_sound(seconds=4, f0=110, seed=i))
                            for i in range(8)])
    for kind, strength in (("faint", 0.03), ("loud", 4.0)):
        _write(root / kind, [(f"anomaly_id_00_{i:08d}.wav",
                              inject_fault(machine_sound(seconds=4, f0=110, seed=40 + i), kind="harmonic",
                                           start_s=0, end_s=4, strength=strength, seed=i))
                             for i in range(3)])
    return root


def test_window_auc_is_the_mann_whitney_statistic_with_ties_halved():
    from sklearn.metrics import roc_auc_score

    rng = np.random.default_rng(0)
    pos, neg = rng.integers(0, 6, 40).astype(float), rng.integers(0, 5, 70).astype(float)
    expected = roc_auc_score(np.r_[np.ones(40), np.zeros(70)], np.r_[pos, neg])
    assert window_auc(pos.tolist(), neg.tolist()) == pytest.approx(expected)


def _selection(meta: dict) -> dict:
    return meta["training"]["fit"]["extra"]["selection"]


def test_training_records_the_cross_validation_and_applies_the_chosen_margin(data, tmp_path):
    opts = TrainOptions(scorer="ws-ae", device="cpu", params=FAST, holdout=0.25)
    _, meta = train_audio(data / "train", tmp_path / "m", opts, weak=data / "faint")
    sel, fit = _selection(meta), meta["training"]["fit"]["extra"]
    assert set(sel["cv_window_auc"]) == {"stage1", "x1", "x2", "x4"}
    assert sorted(n for fold in sel["folds"] for n in fold) == sorted(p.name for p in (data / "faint").iterdir())
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


def test_stage_one_is_kept_when_it_already_ranks_every_labelled_window_first(data, tmp_path):
    """A fault stage 1 already separates perfectly: no margin can beat window AUC 1.0, so the
    model is stage 1 alone - the same weights as training without labels."""
    from workers.model import load_model
    from workers.offline import score_clips

    opts = TrainOptions(scorer="ws-ae", device="cpu", params=FAST, holdout=0.25)
    folder, meta = train_audio(data / "train", tmp_path / "ws", opts, weak=data / "loud")
    sel = _selection(meta)
    assert sel["cv_window_auc"]["stage1"] == 1.0 and sel["chosen_margin_scale"] is None
    assert meta["training"]["stage"].startswith("stage 1 only: stage 1 kept")
    assert meta["training"]["weak_clips"]  # still recorded: evaluation must refuse them
    plain, _ = train_audio(data / "train", tmp_path / "s1", opts)
    clip = [("c", sf.read(next((data / "loud").iterdir()), dtype="float32")[0])]
    a, b = (score_clips(load_model(f, device="cpu"), clip)[0].clip_score for f in (folder, plain))
    assert a == pytest.approx(b, rel=1e-6)
