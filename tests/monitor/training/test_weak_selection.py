"""ws-ae's stage 2 chosen by cross-validation over the labelled clips: the window AUC, the
record in meta.json, stage 1 kept when the labels teach nothing new, and the margin applied."""
from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf
import torch

from monitor.training.audio import TrainOptions, train_audio
from monitor.training.weak_selection import gain_over_stage1, window_auc

from .conftest import FAST_WS_AE

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_window_auc_is_the_mann_whitney_statistic_with_ties_halved():
    from sklearn.metrics import roc_auc_score

    rng = np.random.default_rng(0)
    pos, neg = rng.integers(0, 6, 40).astype(float), rng.integers(0, 5, 70).astype(float)
    expected = roc_auc_score(np.r_[np.ones(40), np.zeros(70)], np.r_[pos, neg])
    assert window_auc(pos.tolist(), neg.tolist()) == pytest.approx(expected)


def test_one_lucky_fold_does_not_carry_a_margin():
    """Valve seed 1's record (five folds of two labelled clips): x4 won one fold by .39 and lost
    or tied the others; its mean gain (+.037) is well inside one standard error (.097)."""
    stage1, x4 = [0.26, 0.68, 0.58, 0.81, 0.55], [0.31, 0.58, 0.97, 0.64, 0.56]
    mean, se = gain_over_stage1(x4, stage1)
    assert mean == pytest.approx(0.036) and se == pytest.approx(0.0964, abs=1e-3)
    assert mean < se
    # a gain on every fold clears it
    mean, se = gain_over_stage1([0.9, 0.8, 0.95, 0.85], [0.3, 0.6, 0.5, 0.4])
    assert mean > se


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


def test_every_candidate_scores_both_sides_of_its_auc_itself(pump_data, tmp_path):
    """The held-out normal clip is the very audio of every labelled clip: whatever stage 2 does
    to the scores, a candidate that scores both sides itself ties every window pair (AUC 0.5),
    so stage 1 is kept. Training once scored the normal side with the stage-1 model only and
    read stage 2's general rise in scores as separation."""
    from monitor.training.audio import clip_vectors
    from monitor.training.weak_selection import choose_stage2
    from workers.model import load_model

    opts = TrainOptions(scorer="ws-ae", device="cpu", params=FAST_WS_AE, holdout=0.25)
    folder, _ = train_audio(pump_data / "train", tmp_path / "s1", opts)
    model = load_model(folder, device="cpu")
    spec = model.scorer.input_spec
    audio = sf.read(next((pump_data / "faint").iterdir()), dtype="float32")[0]
    vectors = clip_vectors(model.frontend, audio, spec)
    normals = torch.cat([clip_vectors(model.frontend, sf.read(p, dtype="float32")[0], spec)
                         for p in sorted((pump_data / "train").iterdir())])
    weak = [(f"copy{i}.wav", audio, vectors) for i in range(3)]
    choice = choose_stage2(model, normals, weak, [("same.wav", audio)], seed=0, scales=(1.0, 4.0))
    assert choice.cv == {"stage1": 0.5, "x1": 0.5, "x4": 0.5}, choice.cv
    assert choice.scale is None


def _labels(path, clips: list, label: str = "fault") -> None:
    """A labels file as ``monitor label`` writes it, one record per clip (its audio beside it)."""
    import json

    with path.open("a") as f:
        for clip in clips:
            f.write(json.dumps({"event_id": clip.stem, "label": label, "audio": str(clip)}) + "\n")


def test_retraining_from_fault_labels_that_help_uses_them(pump_data, tmp_path):
    """Three faint faults the model ranks ~0.8: cross-validated over the events, retraining at
    some margin beats the model as it is, so a new version is written with that margin."""
    from models.artifacts import LATEST
    from monitor.training.retrain import retrain_from_labels

    opts = TrainOptions(scorer="ws-ae", device="cpu", params=FAST_WS_AE, holdout=0.25)
    folder, before = train_audio(pump_data / "train", tmp_path / "m", opts)
    labels = tmp_path / "labels.jsonl"
    _labels(labels, sorted((pump_data / "faint").iterdir()))
    saved, meta = retrain_from_labels(tmp_path / "m", labels, device="cpu")
    sel = meta["training"]["retrain_selection"]
    print(f"\nretraining on faint faults: {sel['reason']}")
    assert sel["chosen_margin_scale"] is not None, sel["reason"]
    assert len(sel["folds"]) == 3 and set(sel["cv_window_auc"]) == {"stage1", "x1", "x2", "x4"}
    assert saved != folder and (tmp_path / "m" / LATEST).read_text().strip() == meta["model_version"]
    assert "for the current model alone" in meta["training"]["stage"]
    stage2 = meta["training"]["fit"]["extra"]["stage2"]
    base = max(before["params"]["margin"], 2.0 * before["threshold"]["value"])
    assert stage2["margin"] == pytest.approx(base * sel["chosen_margin_scale"]) and stage2["n_anomaly"] > 0


def test_retraining_keeps_the_model_when_the_fault_labels_teach_nothing(pump_data, tmp_path, capsys):
    """Loud faults the model already ranks above every normal window: no retraining can beat
    it, so no version is written; with a false alarm labelled too, only that is learnt."""
    from models.artifacts import LATEST
    from monitor.cli import main
    from monitor.training.retrain import retrain_from_labels

    opts = TrainOptions(scorer="ws-ae", device="cpu", params=FAST_WS_AE, holdout=0.25)
    _, before = train_audio(pump_data / "train", tmp_path / "m", opts)
    labels = tmp_path / "labels.jsonl"
    _labels(labels, sorted((pump_data / "loud").iterdir()))
    assert main(["train", "--scorer", "ws-ae", "--from-model", str(tmp_path / "m"), "--labels", str(labels),
                 "--device", "cpu"]) == 0
    out = capsys.readouterr().out
    assert "no new version written" in out and "because   operator labels: the current model kept" in out
    assert (tmp_path / "m" / LATEST).read_text().strip() == before["model_version"]
    assert len(list((tmp_path / "m").iterdir())) == 2  # the one version and `latest`

    _labels(labels, [sorted((pump_data / "train").iterdir())[0]], label="normal")
    saved, meta = retrain_from_labels(tmp_path / "m", labels, device="cpu")
    assert saved.name != before["model_version"] and "the current model kept" in meta["training"]["stage"]
    assert meta["training"]["fit"]["extra"]["stage2"]["n_anomaly"] == 0  # the faults left out
