"""How condition-clf's settings were chosen: cross-validation on the valve split's TRAINING
side only (``train/`` normal clips and the ``weak/`` labelled anomalies; never ``test/``).

For every variant (``--params`` / ``--audio`` JSON over the scorer's defaults) and seed, the
normal training clips are split into ``--folds`` folds stratified by condition; a model is
fitted without each fold (the product's scorer, on the vectors ``monitor train`` cuts) and
scores the fold's normal clips and the labelled anomalies, each clip against its own
condition (clip score = mean vector score, the DCASE protocol). Reported:

- ``accuracy``: how often a held-out normal clip's mean embedding is nearest its own
  condition's centre (chance 1/conditions);
- ``val_auc``: the AUC of the fold's held-out normal clips against the labelled anomalies,
  averaged over folds (about 10 normals against 10 anomalies each: noisy, so compare means
  over seeds); ``pooled_auc``: one AUC over all out-of-fold normals and the anomalies
  (each anomaly scored by every fold's model, its mean taken).

With ``--weak-class`` the labelled anomalies are a training class too; then they are split
into the folds as well and each is scored only by the model that did not train on it
(``pooled_auc`` only). Run outside CI (minutes a variant on 2 cores):

    .venv/bin/python benchmarks/condition_clf_selection.py --tag default --seeds 0 1 \\
        --out benchmarks/results/issue20/selection
    .venv/bin/python benchmarks/condition_clf_selection.py --tag stats-off \\
        --params '{"stats_embed": 0}' --seeds 0 1 --out benchmarks/results/issue20/selection
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

SPLIT = "audio/dcase2023_valve/valve"


def load(split_root: Path, audio: dict):
    import torch

    from models.base import InputSpec
    from models.registry import scorer_class
    from monitor.conditions import condition_from_name
    from monitor.datasets import ReadReport, list_clips
    from monitor.training.audio import clip_vectors, read_clips
    from workers.features import LogMelSpec
    from workers.frontend import AudioFrontEnd

    cfg = {**scorer_class("condition-clf").audio_defaults, **audio}
    spec = LogMelSpec(n_fft=cfg["n_fft"], hop_length=cfg["hop_length"], n_mels=cfg["n_mels"])
    frontend = AudioFrontEnd(spec, device="cpu")
    input_spec = InputSpec(frames=cfg["frames"], features=spec.n_mels, hop=cfg["vector_hop"])
    out = {}
    for part in ("train", "weak"):
        clips = [c for c in list_clips(split_root / part) if c.label == ("normal" if part == "train" else "anomaly")]
        for c, a in read_clips(clips, sample_rate=spec.sample_rate, min_samples=round(cfg["window_s"] * 16000),
                               report=ReadReport()):
            with torch.inference_mode():
                out.setdefault(part, []).append((c.path.name, condition_from_name(c.path.name),
                                                 clip_vectors(frontend, a, input_spec).clone()))
    return input_spec, out


def run_variant(input_spec, data, params: dict, seed: int, folds: int, weak_class: bool) -> dict:
    import torch

    from models.registry import scorer_class
    from sklearn.metrics import roc_auc_score

    normals, weak = data["train"], data["weak"]
    rng = np.random.default_rng(seed)
    fold_of = {}
    for cond in sorted({c for _, c, _ in normals}):
        names = [n for n, c, _ in normals if c == cond]
        rng.shuffle(names)
        for i, n in enumerate(names):
            fold_of[n] = i % folds
    weak_fold = {n: i % folds for i, (n, _, _) in enumerate(weak)}
    accuracy, fold_aucs, pooled_n, weak_scores = [], [], [], {n: [] for n, _, _ in weak}
    fit_s = []
    for f in range(folds):
        train = [(n, c, v) for n, c, v in normals if fold_of[n] != f]
        held = [(n, c, v) for n, c, v in normals if fold_of[n] == f]
        x = torch.cat([v for _, _, v in train])
        conds = [c for _, c, v in train for _ in range(len(v))]
        ids = torch.cat([torch.full((len(v),), i) for i, (_, _, v) in enumerate(train)])
        kw = {"conditions": conds, "clip_ids": ids}
        if weak_class:
            wt = [v for n, _, v in weak if weak_fold[n] != f]
            kw["labels"] = torch.cat([torch.zeros(len(x)), torch.ones(sum(len(v) for v in wt))])
            kw["clip_ids"] = torch.cat([ids] + [torch.full((len(v),), len(train) + i) for i, v in enumerate(wt)])
            x = torch.cat([x, *wt])
        torch.manual_seed(seed * 100 + f)
        scorer = scorer_class("condition-clf")(input_spec=input_spec, device="cpu", seed=seed * 100 + f, **params)
        t0 = time.perf_counter()
        scorer.fit(x, **kw)
        fit_s.append(time.perf_counter() - t0)
        known = scorer.known_conditions
        sn = []
        for n, c, v in held:
            sn.append(float(scorer.with_condition(c).score(v).mean()))
            emb = scorer.embed(v).mean(dim=0, keepdim=True)
            accuracy.append(known[int(scorer._nearest(torch.nn.functional.normalize(emb, dim=1))[0])] == c)
        sa = []
        for n, c, v in weak:
            s = float(scorer.with_condition(c).score(v).mean())
            sa.append(s)
            if not weak_class or weak_fold[n] == f:
                weak_scores[n].append(s)
        pooled_n += sn
        if not weak_class:
            fold_aucs.append(roc_auc_score([0] * len(sn) + [1] * len(sa), sn + sa))
    pooled_a = [float(np.mean(s)) for s in weak_scores.values()]
    return {"accuracy": float(np.mean(accuracy)),
            "val_auc": float(np.mean(fold_aucs)) if fold_aucs else None,
            "val_auc_folds": fold_aucs,
            "pooled_auc": float(roc_auc_score([0] * len(pooled_n) + [1] * len(pooled_a), pooled_n + pooled_a)),
            "fit_seconds": float(np.mean(fit_s))}


def main() -> None:
    import torch

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--params", default="{}", help="scorer parameters (JSON)")
    p.add_argument("--audio", default="{}", help="audio settings (JSON: frames, vector_hop, window_s ...)")
    p.add_argument("--seeds", nargs="+", type=int, default=[0, 1])
    p.add_argument("--folds", type=int, default=5)
    p.add_argument("--weak-class", action="store_true", help="the labelled anomalies as a training class")
    p.add_argument("--tag", default="default")
    p.add_argument("--out", help="append the result (JSON line) to OUT/selection.jsonl")
    args = p.parse_args()
    torch.set_num_threads(1)
    params, audio = json.loads(args.params), json.loads(args.audio)
    input_spec, data = load(ROOT.parent / "shared" / "data" / SPLIT, audio)
    rows = [run_variant(input_spec, data, params, s, args.folds, args.weak_class) for s in args.seeds]
    mean = lambda k: None if rows[0][k] is None else round(float(np.mean([r[k] for r in rows])), 3)  # noqa: E731
    res = {"tag": args.tag, "params": params, "audio": audio, "weak_class": args.weak_class, "seeds": args.seeds,
           "folds": args.folds, "accuracy": mean("accuracy"), "val_auc": mean("val_auc"),
           "pooled_auc": mean("pooled_auc"), "fit_seconds": mean("fit_seconds"), "per_seed": rows}
    print(json.dumps({k: res[k] for k in ("tag", "accuracy", "val_auc", "pooled_auc", "fit_seconds")}), flush=True)
    if args.out:
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        with (out / "selection.jsonl").open("a") as fh:
            fh.write(json.dumps(res) + "\n")


if __name__ == "__main__":
    main()
