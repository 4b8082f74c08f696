"""Is ``conv-ae`` a faithful port? SKAB under the anchor's own recipe, not the product's (outside CI).

    .venv/bin/python benchmarks/skab_conv_ae_anchor.py [--threads 1] [--out FILE.json]

The SKAB notebook behind the leaderboard's Conv-AE row (F1 .78, FAR 13.55 %, MAR 28.02 %),
as read from its text: per run, the model is fitted on windows of 60 steps of the first 400
rows (standard-scaled on them, the last 10 % of the windows for early stopping); its upper
control limit is 4/3 of the 0.999 quantile of the *training* windows' residuals; a row is
anomalous when all 59 windows that start in the 59 rows before it score over the limit (a
rule that looks 58 rows ahead, so it cannot run live). Counts on the test rows (from row
400), the counting that reproduces the leaderboard's T-squared row exactly (.66 / 19.21 /
42.60); whole-run counts are printed too. Only the scorer is ours (``models/conv_ae``): this
says whether the port matches, not what the product's alerting makes of it.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from models.base import InputSpec  # noqa: E402
from models.registry import scorer_class  # noqa: E402
from monitor.evaluation.anchor_rules import skab_flags  # noqa: E402
from monitor.evaluation.timeseries import SKAB_TRAIN_ROWS, point_counts, point_metrics, skab_runs  # noqa: E402
from monitor.sources.csv_sensors import read_sensor_csv  # noqa: E402

STEPS = 60


def run_one(path: Path, seed: int) -> tuple[np.ndarray, np.ndarray]:
    table = read_sensor_csv(path, time_column="datetime")
    x = table.values.astype(np.float64)
    train = x[:SKAB_TRAIN_ROWS]
    z = ((x - train.mean(0)) / np.where(train.std(0) > 0, train.std(0), 1.0)).astype(np.float32)
    windows = torch.from_numpy(z).unfold(0, STEPS, 1).transpose(1, 2).contiguous()
    n_train_windows = SKAB_TRAIN_ROWS - STEPS + 1
    scorer = scorer_class("conv-ae")(input_spec=InputSpec(frames=STEPS, features=x.shape[1]), device="cpu",
                                     seed=seed)
    scorer.fit(windows[:n_train_windows])
    scores = scorer.score(windows).numpy()
    row_scores = np.concatenate([np.full(STEPS - 1, np.nan), scores])  # window ending at each row
    flags = skab_flags(row_scores, scores[:n_train_windows], consensus=STEPS - 1)
    flags[len(x) - 2 * STEPS + 2:] = False  # the notebook's loop stops 60 rows short of the end too
    return flags, table.labels["anomaly"].astype(bool)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default=str(ROOT.parent / "shared" / "data" / "timeseries" / "SKAB"))
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "sensors" / "conv_ae_anchor.json"))
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    test = {k: 0 for k in ("tp", "fp", "fn", "tn")}
    whole = dict(test)
    for path in skab_runs(args.data):
        flags, y = run_one(path, args.seed)
        for total, c in ((test, point_counts(y[SKAB_TRAIN_ROWS:], flags[SKAB_TRAIN_ROWS:])),
                         (whole, point_counts(y, flags))):
            for k in total:
                total[k] += c[k]
    res = {"recipe": __doc__.split("\n\n")[1].replace("\n", " "), "seed": args.seed,
           "test_rows": {**test, **point_metrics(test)}, "whole_runs": {**whole, **point_metrics(whole)},
           "published": {"f1": 0.78, "far": 13.55, "mar": 28.02}}
    Path(args.out).write_text(json.dumps(res, indent=2))
    for k in ("test_rows", "whole_runs"):
        m = res[k]
        print(f"{k}: F1 {m['f1']:.3f}  FAR {m['far']:.2f} %  MAR {m['mar']:.2f} %")


if __name__ == "__main__":
    main()
