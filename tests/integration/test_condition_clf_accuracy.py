"""condition-clf on the valve split (conditions = the clips' pat_XX attribute), seeds 0-2.

Issue 20 asks for a mean AUC of .70 (the AE gives .456, the issue's reference .674); what
this classifier reaches is .591 / .518 / .619 (mean .576; benchmarks/results/issue20/), short
of it. The bar below (.55) was set after seeing that figure: it guards the level reached
(above the AE) against regressions, it is not the issue's target. Deterministic on one
thread; 4-6 min a seed on a loaded 2-core machine, less when quiet.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch

from monitor.evaluation.dcase import evaluate_audio
from monitor.training.audio import TrainOptions, train_audio
from tests.conftest import shared_data
from workers.model import load_model

MEAN_AUC_AT_LEAST = 0.55


@pytest.mark.slow
def test_condition_clf_hears_valve_faults_the_autoencoder_misses(tmp_path):
    torch.set_num_threads(1)
    root = shared_data("audio", "dcase2023_valve", "valve")
    aucs = []
    for seed in (0, 1, 2):
        folder, meta = train_audio(root / "train", tmp_path / f"m{seed}",
                                   TrainOptions(scorer="condition-clf", seed=seed, device="cpu"))
        assert meta["params"]["known"] == 4  # pat_00 .. pat_03
        res = evaluate_audio(load_model(folder, device="cpu"), root / "test")
        aucs.append(res["auc"])
        print(f"\nvalve seed {seed}: AUC {res['auc']:.3f} pAUC {res['pauc']:.3f} "
              f"{ {d: round(m['auc'], 3) for d, m in res['domains'].items()} } FPR {res['fpr']:.2f} "
              f"recall {res['recall']:.2f} fit {meta['training']['fit']['seconds']:.0f} s")
    assert np.mean(aucs) >= MEAN_AUC_AT_LEAST
