"""Scorer x split: AUC, pAUC(0.1), FPR and recall at the stored threshold, training seconds,
seeds 0-2, through the product's training and evaluation (``train_audio`` / ``evaluate_audio``,
what ``monitor train`` / ``monitor evaluate`` run). Run outside CI (minutes on 2 cores):

    .venv/bin/python benchmarks/scorer_splits.py --out benchmarks/results/issue20
    .venv/bin/python benchmarks/scorer_splits.py --scorers stats-maha --splits fan --seeds 0  # quick
    .venv/bin/python benchmarks/scorer_splits.py --scorers condition-clf --splits fan \
        --exposure ../shared/data/audio/dcase2023_sample --tag exposure
    .venv/bin/python benchmarks/scorer_splits.py --scorers condition-clf --splits valve --weak --tag weak

Every model uses its scorer's defaults unless ``--params`` / ``--audio`` (JSON) say otherwise;
the threshold is the stored one (gamma on held-out normal windows). One torch thread. The
exposure folder's clips of the split's own machine type are left out (``--exposure`` is
"other machines of the plant"), so the fan split never trains on fan clips of DCASE 2023.
"""
from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

SPLITS = {"fan": "audio/mimii_fan_id00/fan", "valve": "audio/dcase2023_valve/valve"}


def other_machines(folder: Path, machine: str, work: Path) -> Path:
    """A folder of links to the exposure clips that are not of ``machine``."""
    out = work / "exposure"
    out.mkdir(parents=True, exist_ok=True)
    for p in sorted(folder.iterdir()):
        if p.suffix == ".wav" and not p.name.lower().startswith(machine.lower() + "_"):
            (out / p.name).symlink_to(p.resolve())
    return out


def run(args: argparse.Namespace) -> list[dict]:
    import torch

    from monitor.evaluation.dcase import evaluate_audio
    from monitor.training.audio import TrainOptions, train_audio
    from workers.model import load_model

    torch.set_num_threads(1)
    data_root = ROOT.parent / "shared" / "data"
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        for split in args.splits:
            root = data_root / SPLITS[split]
            exposure = (str(other_machines(Path(args.exposure), root.name, work / split))
                        if args.exposure else None)
            weak = root / "weak" if args.weak else None
            for scorer in args.scorers:
                for seed in args.seeds:
                    t0 = time.perf_counter()
                    folder, meta = train_audio(root / "train", work / f"{split}-{scorer}-{seed}", TrainOptions(
                        scorer=scorer, seed=seed, device="cpu", params=json.loads(args.params or "{}"),
                        audio=json.loads(args.audio or "{}"), exposure=exposure,
                        threshold_folds=args.threshold_folds), weak=weak)
                    res = evaluate_audio(load_model(folder, device="cpu"), root / "test")
                    row = {"split": split, "scorer": scorer, "seed": seed, "tag": args.tag,
                           "auc": res["auc"], "pauc": res["pauc"], "fpr": res["fpr"], "recall": res["recall"],
                           "domains": {d: m["auc"] for d, m in res.get("domains", {}).items()},
                           "train_seconds": meta["training"]["seconds"],
                           "fit_seconds": meta["training"]["fit"]["seconds"],
                           "fit": meta["training"]["fit"].get("extra"), "params": meta["params"],
                           "wall_seconds": time.perf_counter() - t0}
                    print(json.dumps({k: row[k] for k in ("split", "scorer", "seed", "auc", "pauc", "fpr",
                                                          "train_seconds")}), flush=True)
                    rows.append(row)
                    shutil.rmtree(work / f"{split}-{scorer}-{seed}", ignore_errors=True)
    return rows


def table(rows: list[dict]) -> str:
    lines = ["| split | scorer | tag | AUC per seed | mean AUC | mean pAUC | FPR at threshold | train s |",
             "|---|---|---|---|---|---|---|---|"]
    keys = sorted({(r["split"], r["scorer"], r["tag"]) for r in rows})
    for split, scorer, tag in keys:
        rs = [r for r in rows if (r["split"], r["scorer"], r["tag"]) == (split, scorer, tag)]
        aucs = " / ".join(f"{r['auc']:.3f}" for r in rs)
        fprs = " / ".join(f"{r['fpr']:.2f}" for r in rs)
        lines.append(f"| {split} | {scorer} | {tag} | {aucs} | {np.mean([r['auc'] for r in rs]):.3f} | "
                     f"{np.mean([r['pauc'] for r in rs]):.3f} | {fprs} | "
                     f"{np.mean([r['train_seconds'] for r in rs]):.1f} |")
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--splits", nargs="+", default=sorted(SPLITS), choices=sorted(SPLITS))
    p.add_argument("--scorers", nargs="+", default=["ae", "stats-maha", "condition-clf"])
    p.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    p.add_argument("--params", help="scorer parameters (JSON)")
    p.add_argument("--audio", help="audio settings (JSON: window_s, frames, vector_hop ...)")
    p.add_argument("--exposure", help="folder of other machines' normal clips (condition-clf)")
    p.add_argument("--weak", action="store_true", help="train with the split's weak/ labelled anomalies "
                   "(monitor train --weak; condition-clf: one more class)")
    p.add_argument("--threshold-folds", type=int, default=0, metavar="K",
                   help="fit the threshold on out-of-fold scores of all normal clips (monitor train "
                        "--threshold-folds K; 0 = the held-out clips)")
    p.add_argument("--tag", default="default", help="name of this variant in the table")
    p.add_argument("--out", help="write rows (JSON lines) and the table (markdown) here")
    args = p.parse_args()
    rows = run(args)
    print(table(rows))
    if args.out:
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        name = f"{'-'.join(args.scorers)}_{'-'.join(args.splits)}_{args.tag}"
        (out / f"{name}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
        (out / f"{name}.md").write_text(f"`{' '.join(sys.argv[1:])}`\n\n" + table(rows) + "\n")


if __name__ == "__main__":
    main()
