"""Which band statistics stats-maha should pool, judged on a split's TRAINING side only
(``train/`` normal clips and the ``weak/`` labelled anomalies; never ``test/``).

For every statistic, each normal training clip is left out once: the product's scorer is
fitted on the others (the vectors ``monitor train`` cuts, ``clip_ids`` for its shrinkage
cross-validation) and scores it; a model fitted on all of them scores the labelled
anomalies; clip score = mean vector score (the DCASE protocol). Reported: the AUC of the
left-out normals against the labelled anomalies (10 on valve, 4 on fan: a coarse guide).

    .venv/bin/python benchmarks/stats_maha_selection.py --out benchmarks/results/issue20/selection
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

SPLITS = {"fan": "audio/mimii_fan_id00/fan", "valve": "audio/dcase2023_valve/valve"}


def clips_of(root: Path):
    import torch

    from models.base import InputSpec
    from models.registry import scorer_class
    from monitor.datasets import ReadReport, list_clips
    from monitor.training.audio import clip_vectors, read_clips
    from workers.features import LogMelSpec
    from workers.frontend import AudioFrontEnd

    cfg = scorer_class("stats-maha").audio_defaults
    frontend = AudioFrontEnd(LogMelSpec(), device="cpu")
    spec = InputSpec(frames=cfg["frames"], features=128, hop=cfg["vector_hop"])
    out = {}
    for part, label in (("train", "normal"), ("weak", "anomaly")):
        clips = [c for c in list_clips(root / part) if c.label == label]
        with torch.inference_mode():
            out[part] = [clip_vectors(frontend, a, spec).clone()
                         for _, a in read_clips(clips, sample_rate=16000, min_samples=64000, report=ReadReport())]
    return spec, out


def validation_auc(spec, data, statistics: str) -> float:
    import torch
    from sklearn.metrics import roc_auc_score

    from models.registry import scorer_class

    def fitted(vectors: list[torch.Tensor]):
        scorer = scorer_class("stats-maha")(input_spec=spec, device="cpu", statistics=statistics)
        scorer.fit(torch.cat(vectors), clip_ids=torch.cat([torch.full((len(v),), i) for i, v in enumerate(vectors)]))
        return scorer

    normal = data["train"]
    held = [float(fitted(normal[:i] + normal[i + 1:]).score(v).mean()) for i, v in enumerate(normal)]
    full = fitted(normal)
    faults = [float(full.score(v).mean()) for v in data["weak"]]
    return float(roc_auc_score([0] * len(held) + [1] * len(faults), held + faults))


def main() -> None:
    import torch

    from models.stats_maha.net import STATISTICS

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--splits", nargs="+", default=sorted(SPLITS), choices=sorted(SPLITS))
    p.add_argument("--out", help="write stats-maha.jsonl here")
    args = p.parse_args()
    torch.set_num_threads(1)
    rows = []
    for split in args.splits:
        spec, data = clips_of(ROOT.parent / "shared" / "data" / SPLITS[split])
        for statistics in STATISTICS:
            auc = validation_auc(spec, data, statistics)
            rows.append({"split": split, "statistics": statistics, "val_auc": round(auc, 3),
                         "normal_clips": len(data["train"]), "labelled_anomalies": len(data["weak"])})
            print(json.dumps(rows[-1]), flush=True)
    if args.out:
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        (out / "stats-maha.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))


if __name__ == "__main__":
    main()
