"""Where TadGAN's score comes from: its reconstruction error as ``point``, ``area`` or ``dtw``
on the same trained networks, per NAB subset, under the alerting rules (outside CI).

    .venv/bin/python benchmarks/tadgan_rec_errors.py [--cache /tmp/nab-window-scores]

Per series one default fit (``monitor evaluate --protocol nab`` without flags); for each
``rec_error`` the z-scoring statistics are refitted on the same training windows
(``TadGanScorer.fit_score_stats``) and the whole signal is scored again. The window scores go to
``<cache>/tadgan-<rec_error>/`` in ``sensor_alerting_rules.py``'s layout, and the rules' table is
written to ``benchmarks/results/sensors/tadgan_rec_errors.md``.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.sensor_alerting_rules import DATA, SUBSETS, cache_scores, fit_default, table  # noqa: E402
from monitor.evaluation.timeseries import _nab_root  # noqa: E402
from monitor.training.sensors import holdout_window_scores  # noqa: E402

REC_ERRORS = ("point", "area", "dtw")


def rescore(path: Path) -> dict[str, np.ndarray]:
    """One default fit of ``path``; its window scores under every reconstruction error."""
    model, seg, _, chosen = fit_default("tadgan", path)
    frames, stride = chosen["frames"], chosen["train_stride"]
    sc = model.scorer
    raw = torch.from_numpy(model.frontend.normalise(seg)).unfold(0, frames, stride).transpose(1, 2)
    x = sc.module.scale(raw.contiguous().float())  # the training windows, as fit saw them
    out = {}
    for rec in REC_ERRORS:
        sc.hyper["rec_error"] = rec
        sc.fit_score_stats(x)
        out[rec] = holdout_window_scores(model, [seg], [0])
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cache", default="/tmp/nab-window-scores")
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    cache = Path(args.cache)
    for subset in SUBSETS:
        for path in sorted((_nab_root(DATA) / "data" / subset).glob("*.csv")):
            name = f"{subset}__{path.stem}.npz"
            base = cache / "tadgan" / name
            if not base.exists():
                (cache / "tadgan").mkdir(parents=True, exist_ok=True)
                cache_scores("tadgan", subset, path, base)
            if all((cache / f"tadgan-{r}" / name).exists() for r in REC_ERRORS) or "untrainable" in np.load(base):
                continue
            print(f"rescore {subset}/{path.name}", flush=True)
            d = dict(np.load(base))
            for rec, scores in rescore(path).items():
                (cache / f"tadgan-{rec}").mkdir(parents=True, exist_ok=True)
                np.savez(cache / f"tadgan-{rec}" / name, **{**d, "score": scores})
    head = ["| scores | rule | NAB artificial F1 (tp/fp/fn) | realKnownCause F1 (tp/fp/fn) | "
            "artificialNoAnomaly events per series |", "|---|---|---|---|---|"]
    rows = [line for rec in REC_ERRORS for line in table(cache, f"tadgan-{rec}")[0]]
    text = __doc__.split("\n\n", 2)[2].strip() + "\n\n" + "\n".join(head + rows) + "\n"
    (ROOT / "benchmarks" / "results" / "sensors" / "tadgan_rec_errors.md").write_text(text)
    print("\n".join(head + rows))


if __name__ == "__main__":
    main()
