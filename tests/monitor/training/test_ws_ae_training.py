"""``train --weak``: the weakly-supervised training path, its stage line and its leak guard."""
from __future__ import annotations

from pathlib import Path

import pytest
import soundfile as sf

from monitor.errors import DataError

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _write(folder: Path, names_and_audio) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for name, a in names_and_audio:
        sf.write(folder / name, a, 16000, subtype="PCM_16")


@pytest.fixture(scope="module")
def weak_dirs(tmp_path_factory):
    from monitor.synth import inject_fault, machine_sound

    root = tmp_path_factory.mktemp("ws")
    _write(root / "train", [(f"normal_id_00_{i:08d}.wav", machine_sound(seconds=4, f0=110, seed=i))
                            for i in range(8)])
    faulty = [(f"anomaly_id_00_{i:08d}.wav",
               inject_fault(machine_sound(seconds=4, f0=110, seed=40 + i), kind="harmonic",
                            start_s=0, end_s=4, seed=i)) for i in range(2)]
    _write(root / "weak", faulty)
    _write(root / "test", [(f"normal_id_00_{i:08d}.wav", machine_sound(seconds=4, f0=110, seed=60 + i))
                           for i in range(2)] + faulty[:1])
    return root


FAST = {"epochs": 15, "stage2_epochs": 15, "batch_size": 32, "patience": 5}


def test_train_with_weak_records_hashes_and_evaluate_refuses_them(weak_dirs, tmp_path):
    from models.artifacts import file_sha256
    from monitor.evaluation.dcase import evaluate_audio
    from monitor.training.audio import TrainOptions, train_audio
    from workers.model import load_model

    # the paper's recipe as such (cross-validated selection: tests/monitor/test_weak_selection.py)
    opts = TrainOptions(scorer="ws-ae", device="cpu", params={**FAST, "stage2_select": "fixed"}, holdout=0.5)
    folder, meta = train_audio(weak_dirs / "train", tmp_path / "m", opts, weak=weak_dirs / "weak")
    tr = meta["training"]
    assert tr["stage"].startswith("stage 1 + stage 2 (2 labelled")
    assert tr["weak_clip_sha256"] == sorted(file_sha256(p) for p in (weak_dirs / "weak").iterdir())
    assert meta["threshold"]["convention"] == "paper" and meta["threshold"]["q"] == 0.99
    assert meta["alerting_window"] == {"length_s": 2.0, "hop_s": 0.5}
    assert "value" in meta["threshold_variants"]["training_windows"]
    with pytest.raises(DataError, match="used to train this model"):
        evaluate_audio(load_model(folder, device="cpu"), weak_dirs / "test")


def test_train_without_weak_says_stage_one_only(weak_dirs, tmp_path, capsys):
    from monitor.cli import main

    rc = main(["train", "--scorer", "ws-ae", "--data", str(weak_dirs / "train"), "--out",
               str(tmp_path / "m"), "--epochs", "5", "--device", "cpu", "--holdout", "0.5"])
    out = capsys.readouterr().out
    assert rc == 0 and "stage 1 only" in out and "paper variant" in out


def test_weak_needs_a_weakly_supervised_scorer(weak_dirs, tmp_path):
    from monitor.training.audio import TrainOptions, train_audio

    with pytest.raises(DataError, match="weakly-supervised scorer"):
        train_audio(weak_dirs / "train", tmp_path / "m",
                    TrainOptions(scorer="ae", device="cpu", epochs=1, holdout=0.5),
                    weak=weak_dirs / "weak")
    with pytest.raises(DataError, match="named 'normal'"):
        train_audio(weak_dirs / "train", tmp_path / "m2",
                    TrainOptions(scorer="ws-ae", device="cpu", params=FAST, holdout=0.5),
                    weak=weak_dirs / "train")
