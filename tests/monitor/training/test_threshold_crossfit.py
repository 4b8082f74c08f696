"""The threshold from out-of-fold scores: folds partition the clips, each fold's model never
saw its clips, the recipe (stage 2 included) is repeated, and bad fold counts are refused early."""
from __future__ import annotations

import numpy as np
import pytest

from monitor.errors import DataError
from monitor.training.crossfit import fold_groups, out_of_fold_window_scores
from monitor.training.audio import TrainOptions, train_audio

from .conftest import FAST_WS_AE

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_fold_groups_partition_the_clips_and_refuse_impossible_counts():
    groups = fold_groups(11, 4, seed=3)
    assert sorted(i for g in groups for i in g) == list(range(11))
    assert sorted(len(g) for g in groups) == [2, 3, 3, 3]
    assert fold_groups(11, 4, seed=3) == groups != fold_groups(11, 4, seed=4)
    with pytest.raises(DataError, match="at least 2"):
        fold_groups(5, 1, seed=0)
    with pytest.raises(DataError, match="3 normal clips cannot be split into 4"):
        fold_groups(3, 4, seed=0)


def test_each_fold_is_scored_by_a_model_trained_without_it(trained_model):
    from workers.model import load_model

    model = load_model(trained_model, device="cpu")
    rng = np.random.default_rng(0)
    clips = [(f"c{i}", 0.1 * rng.standard_normal(16000 * 2).astype(np.float32)) for i in range(5)]
    skipped: list[set[int]] = []

    def fit_without(skip):
        skipped.append(skip)
        return model

    scores, report = out_of_fold_window_scores(clips, folds=3, seed=0, fit_without=fit_without)
    groups = fold_groups(5, 3, seed=0)
    assert skipped == [set(g) for g in groups]
    assert report["folds"] == [[f"c{i}" for i in g] for g in groups] and report["windows"] == len(scores)
    per_clip = len(scores) // 5
    assert per_clip >= 1 and len(scores) == 5 * per_clip


def test_training_with_folds_fits_on_out_of_fold_scores_and_keeps_the_held_out_fit(pump_data, tmp_path):
    opts = TrainOptions(scorer="ws-ae", device="cpu", params={**FAST_WS_AE, "stage2_select": "fixed"},
                        holdout=0.25, threshold_folds=4)
    _, meta = train_audio(pump_data / "train", tmp_path / "m", opts, weak=pump_data / "loud")
    cf, thr = meta["training"]["threshold_crossfit"], meta["threshold"]
    assert sorted(n for f in cf["folds"] for n in f) == sorted(p.name for p in (pump_data / "train").iterdir())
    assert cf["stage2_in_folds"] is True  # the folds repeat stage 2 with the labelled clips
    assert thr["fitted_on"] == f"{cf['windows']} out-of-fold windows of 8 normal clips (4 folds)"
    held = meta["threshold_variants"]["held_out_windows"]
    assert "held-out normal clips" in held["fitted_on"] and held["value"] != thr["value"]
    plain = train_audio(pump_data / "train", tmp_path / "p",
                        TrainOptions(scorer="ws-ae", device="cpu", params={**FAST_WS_AE, "stage2_select": "fixed"},
                                     holdout=0.25), weak=pump_data / "loud")[1]
    assert plain["threshold"]["value"] == pytest.approx(held["value"])  # same model, same held-out fit
    assert plain["model_version"].rsplit("-", 1)[1] == meta["model_version"].rsplit("-", 1)[1]  # weights hash


def test_too_many_folds_are_refused_before_any_training(pump_data, tmp_path):
    with pytest.raises(DataError, match="8 normal clips cannot be split into 9 folds"):
        train_audio(pump_data / "train", tmp_path / "m", TrainOptions(scorer="ae", device="cpu", threshold_folds=9))
    assert not (tmp_path / "m").exists()


def test_retraining_a_cross_fitted_model_says_its_threshold_is_held_out_again(pump_data, tmp_path):
    import json

    from monitor.training.retrain import retrain_from_labels

    opts = TrainOptions(scorer="ws-ae", device="cpu", params=FAST_WS_AE, holdout=0.25, threshold_folds=2)
    folder, meta = train_audio(pump_data / "train", tmp_path / "m", opts)
    assert "threshold_crossfit" in meta["training"]
    fault = next((pump_data / "loud").iterdir())
    labels = tmp_path / "labels.jsonl"
    labels.write_text(json.dumps({"event_id": "e1", "label": "fault", "audio": str(fault)}) + "\n")
    _, new = retrain_from_labels(folder, labels, epochs=3, device="cpu")
    assert "threshold_crossfit" not in new["training"]
    assert "held_out_windows" not in new["threshold_variants"]
    paper = new["threshold_variants"]["training_windows"]  # refitted on the new weights
    assert paper["value"] != meta["threshold_variants"]["training_windows"]["value"]
    assert "held-out normal clips" in new["threshold"]["fitted_on"]
