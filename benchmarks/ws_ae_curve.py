"""AE vs weakly-supervised AE on the valve and MIMII fan splits, and AUC against the number of
labelled anomalies (the paper's Figure 4 on our data). Run outside CI (minutes on 2 cores):

    .venv/bin/python benchmarks/ws_ae_curve.py --out bench_out/ws_ae
    .venv/bin/python benchmarks/ws_ae_curve.py --splits fan --seeds 0 --labels 0 4   # quick

For every split and seed: the DCASE ``ae`` (product defaults), ws-ae stage 1 (0 labels), then
ws-ae stage 2 from that stage-1 model with n labelled anomaly clips (a seeded subset of
``weak/``; "all" = every clip). Each model goes through ``evaluate_audio`` on ``test/`` (the
leak guard refuses a test clip used in training). Reported per run: AUC, pAUC(0.1), per-domain
AUC, the FPR / recall of the alerting decision at the stored threshold (gamma fitted on held-out
normals, the product default) and at the paper's variant (gamma fitted on the training clips'
window scores). Never a test clip for training or threshold choice.

ws-ae training with labels picks its stage-2 margin (or none) by cross-validation over the
labelled clips (``monitor/weak_selection.py``; the "stage 2 (cv)" column); ``--params
'{"stage2_select": "fixed"}'`` runs the paper's recipe as such. With one labelled clip there is
nothing to cross-validate and the paper's recipe runs.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

SPLITS = {"fan": "audio/mimii_fan_id00/fan", "valve": "audio/dcase2023_valve/valve"}


def decisions(model, results, labels, threshold):
    from monitor.evaluation.dcase import decision_metrics, flagged_by_alerting

    m = dataclasses.replace(model, threshold=threshold)
    flagged = np.array([flagged_by_alerting(m, r)[0] for r in results])
    d = decision_metrics(labels, flagged)
    return {"fpr": d["fpr"], "recall": d["recall"], "threshold": threshold.value}


def evaluate(folder: Path, test: Path) -> dict:
    from models.threshold import Threshold
    from monitor.evaluation.dcase import evaluate_audio
    from workers.model import load_model

    model = load_model(folder, device="cpu")
    res = evaluate_audio(model, test)
    results = res.pop("_results")
    y = np.array([r["label"] == "anomaly" for r in res["rows"]])
    by_name = {r.name: r for r in results}
    ordered = [by_name[r["clip"]] for r in res["rows"]]
    out = {"auc": res["auc"], "pauc": res["pauc"],
           "domains": {d: v["auc"] for d, v in res.get("domains", {}).items()},
           "product": decisions(model, ordered, y, model.threshold)}
    variants = model.meta.get("threshold_variants", {})
    if "value" in variants.get("training_windows", {}):
        out["paper"] = decisions(model, ordered, y, Threshold.from_dict(variants["training_windows"]))
    if "value" in variants.get("held_out_windows", {}):  # trained with --threshold-folds
        out["held_out"] = decisions(model, ordered, y, Threshold.from_dict(variants["held_out_windows"]))
    tr = model.meta["training"]
    out["train_seconds"] = tr["seconds"]
    extra = tr["fit"].get("extra") or {}
    out["epochs"] = {k: v.get("epochs") for k, v in extra.items() if isinstance(v, dict) and "epochs" in v}
    if not out["epochs"]:
        out["epochs"] = {"ae": tr["fit"]["epochs"]}
    if "selection" in extra:
        sel = extra["selection"]
        out["selection"] = {"chosen": sel["chosen_margin_scale"], "cv": sel["cv_window_auc"],
                            "seconds": sel["seconds"]}
    return out


def run(args) -> dict:
    import torch

    from monitor.datasets import list_clips
    from monitor.training.audio import TrainOptions, train_audio

    torch.set_num_threads(args.threads)
    data_root = Path(args.data)
    results: dict = {"config": vars(args), "runs": []}
    out = Path(args.out)
    models = out / "models"
    for split in args.splits:
        base = data_root / SPLITS[split]
        weak_all = [c.path for c in list_clips(base / "weak")]
        for seed in args.seeds:
            def record(kind, n, folder):
                r = evaluate(folder, base / "test")
                r.update(split=split, seed=seed, model=kind, labels=n)
                results["runs"].append(r)
                print(json.dumps({k: r[k] for k in ("split", "seed", "model", "labels", "auc", "pauc")}
                                 | {"fpr": r["product"]["fpr"], "s": r["train_seconds"],
                                    "chosen": r.get("selection", {}).get("chosen", "-")}), flush=True)
                (out / "results.json").write_text(json.dumps(results, indent=1))

            if not args.skip_ae:
                f, _ = train_audio(base / "train", models / f"{split}-ae-{seed}",
                                   TrainOptions(scorer="ae", seed=seed, device="cpu"))
                record("ae", 0, f)
            params = json.loads(args.params) if args.params else None
            s1, _ = train_audio(base / "train", models / f"{split}-ws1-{seed}",
                                TrainOptions(scorer="ws-ae", seed=seed, device="cpu", params=params,
                                             threshold_folds=args.threshold_folds))
            record("ws-ae", 0, s1)
            order = np.random.default_rng(seed).permutation(len(weak_all))
            for n in args.labels:
                n = len(weak_all) if n in ("all", -1) else int(n)
                if n == 0 or n > len(weak_all):
                    continue
                subset = [weak_all[i] for i in order[:n]]
                f, _ = train_audio(base / "train", models / f"{split}-ws-{seed}-{n}",
                                   TrainOptions(scorer="ws-ae", seed=seed, device="cpu", params=params,
                                                threshold_folds=args.threshold_folds),
                                   weak=subset, stage1=s1)
                record("ws-ae", n, f)
    return results


def chosen(run: dict) -> str:
    """The cross-validated stage-2 choice of a run: margin xN, "stage 1" or "-" (none made)."""
    if "selection" not in run:
        return "-"
    scale = run["selection"]["chosen"]
    return "stage 1" if scale is None else f"x{scale:g}"


def summarise(results: dict, out: Path) -> str:
    runs = results["runs"]
    folds = results["config"].get("threshold_folds") or 0
    stored = f"{folds}-fold out-of-fold" if folds else "held-out"
    lines = [f"| split | model | labels | seed | AUC | pAUC | FPR ({stored} thr) | recall | "
             "FPR (paper thr) | FPR / recall (held-out thr) | domains | epochs | stage 2 (cv) | train s |",
             "|" + "---|" * 14]
    for r in runs:
        p, h = r.get("paper", {}), r.get("held_out")
        dom = " ".join(f"{d} {v:.3f}" for d, v in r["domains"].items())
        held = f"{h['fpr']:.2f} / {h['recall']:.2f}" if h else "(stored)"
        lines.append(f"| {r['split']} | {r['model']} | {r['labels']} | {r['seed']} | {r['auc']:.3f} | "
                     f"{r['pauc']:.3f} | {r['product']['fpr']:.2f} | {r['product']['recall']:.2f} | "
                     f"{p.get('fpr', float('nan')):.2f} | {held} | {dom} | {r['epochs']} | {chosen(r)} | "
                     f"{r['train_seconds']:.0f} |")
    lines += ["", "| split | model | labels | AUC mean +- sd | pAUC mean | FPR mean |", "|" + "---|" * 6]
    keys = sorted({(r["split"], r["model"], r["labels"]) for r in runs})
    for k in keys:
        sel = [r for r in runs if (r["split"], r["model"], r["labels"]) == k]
        a = np.array([r["auc"] for r in sel])
        lines.append(f"| {k[0]} | {k[1]} | {k[2]} | {a.mean():.3f} +- {a.std():.3f} (n={len(a)}) | "
                     f"{np.mean([r['pauc'] for r in sel]):.3f} | "
                     f"{np.mean([r['product']['fpr'] for r in sel]):.2f} |")
    text = "\n".join(lines)
    (out / "summary.md").write_text(text + "\n")
    plot(runs, out / "auc_vs_labels.png")
    return text


def plot(runs, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    splits = sorted({r["split"] for r in runs})
    fig, axes = plt.subplots(1, len(splits), figsize=(5 * len(splits), 4), squeeze=False)
    for ax, split in zip(axes[0], splits):
        ws = [r for r in runs if r["split"] == split and r["model"] == "ws-ae"]
        ns = sorted({r["labels"] for r in ws})
        mean = [np.mean([r["auc"] for r in ws if r["labels"] == n]) for n in ns]
        sd = [np.std([r["auc"] for r in ws if r["labels"] == n]) for n in ns]
        ax.errorbar(ns, mean, yerr=sd, marker="o", capsize=3, label="ws-ae (0 = stage 1)")
        ae = [r["auc"] for r in runs if r["split"] == split and r["model"] == "ae"]
        if ae:
            ax.axhline(np.mean(ae), color="gray", ls="--", label="DCASE ae")
        ax.axhline(0.5, color="k", lw=0.5)
        ax.set(title=f"{split}: AUC vs labelled anomaly clips", xlabel="labelled anomaly clips",
               ylabel="test AUC (mean +- sd over seeds)", ylim=(0.3, 1.02))
        ax.legend(loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--data", default=str(ROOT.parent / "shared" / "data"))
    p.add_argument("--out", default="bench_out/ws_ae")
    p.add_argument("--splits", nargs="+", default=["fan", "valve"], choices=sorted(SPLITS))
    p.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    p.add_argument("--labels", nargs="+", default=["1", "2", "5", "all"],
                   help="labelled anomaly counts after 0 (stage 1); 'all' = the whole weak/ folder")
    p.add_argument("--params", help="ws-ae parameters as JSON (variants), e.g. '{\"margin_scale\": 3}'")
    p.add_argument("--skip-ae", action="store_true", help="skip the DCASE ae rows")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--threshold-folds", type=int, default=0,
                   help="ws-ae thresholds from K-fold out-of-fold scores (monitor train --threshold-folds)")
    args = p.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    results = run(args)
    results["seconds"] = round(time.time() - t0, 1)
    (out / "results.json").write_text(json.dumps(results, indent=1))
    print(summarise(results, out))
    print(f"\n{results['seconds']} s; results in {out}/results.json, summary.md, auc_vs_labels.png")
    return 0


if __name__ == "__main__":
    sys.exit(main())
