"""condition-clf through train_audio: labelled faults (--weak) as one more class, and the
cross-fitted threshold with each fold trained on its own clips' conditions."""
from __future__ import annotations

import pytest
import soundfile as sf

from models.condition_clf.scorer import WEAK
from monitor.synth import machine_sound
from monitor.training.audio import TrainOptions, train_audio

TINY = {"epochs": 2, "channels": [4, 4], "embed": 8, "stats_embed": 4}


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("ccl")
    (root / "train").mkdir()
    (root / "weak").mkdir()
    for i in range(8):  # two programs of one valve
        pat, f0 = ("pat_00", 110.0) if i % 2 else ("pat_01", 190.0)
        sf.write(root / "train" / f"section_00_source_train_normal_{i:04d}_{pat}.wav",
                 machine_sound(seconds=6.0, f0=f0, seed=i), 16000, subtype="PCM_16")
    for i in range(2):
        sf.write(root / "weak" / f"section_00_source_test_anomaly_{i:04d}_pat_00.wav",
                 machine_sound(seconds=6.0, f0=150.0, seed=20 + i), 16000, subtype="PCM_16")
    return root


def test_labelled_faults_join_as_a_class_and_evaluation_would_refuse_them(data, tmp_path):
    folder, meta = train_audio(data / "train", tmp_path / "m", TrainOptions(
        scorer="condition-clf", device="cpu", holdout=0.25, params=TINY), weak=data / "weak")
    params, fit = meta["params"], meta["training"]["fit"]["extra"]
    assert params["conditions"] == ["section_00_pat_00", "section_00_pat_01", WEAK] and params["known"] == 2
    assert fit["fault_patches"] > 0 and fit["crops"] == "random"
    assert len(meta["training"]["weak_clip_sha256"]) == 2  # evaluate's leak check refuses them


def test_cross_fitted_threshold_trains_each_fold_on_its_conditions(data, tmp_path):
    folder, meta = train_audio(data / "train", tmp_path / "m", TrainOptions(
        scorer="condition-clf", device="cpu", holdout=0.25, params=TINY, threshold_folds=2))
    cf = meta["training"]["threshold_crossfit"]
    assert len(cf["folds"]) == 2 and cf["windows"] > 0
    assert "out-of-fold" in meta["threshold"]["fitted_on"]
