"""``monitor evaluate``: clip AUC / pAUC and the service's decisions on labelled clips."""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from workers.model import load_model

from monitor.conditions import condition_lookup
from monitor.evaluation.dcase import evaluate_audio
from monitor.commands import sensor_options
from monitor.commands.decisions import add_config_option, decisions
from monitor.datasets import list_clips, parse_channel
from monitor.commands.common import FileProgress, add_channel_arg, fmt, print_json, threshold_arg

HELP = "evaluate a model on labelled clips: AUC, pAUC, and precision/recall/F1/FPR at its threshold"


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("evaluate", help=HELP, description=HELP)
    p.add_argument("--model", metavar="MODEL_DIR", help="model to evaluate (protocol dcase)")
    p.add_argument("--data", required=True, help="folder of clips named 'normal' / 'anomaly'")
    p.add_argument("--format", default="table", choices=("table", "json"))
    p.add_argument("--plots", metavar="DIR", help="write score histograms and the ROC curve here")
    p.add_argument("--device", default="auto")
    p.add_argument("--conditions", metavar="CSV", help="condition-clf: clip -> condition columns "
                   "(default: the condition in the clip names)")
    p.add_argument("--threshold", type=threshold_arg, help="override the stored threshold for this run")
    add_channel_arg(p)
    add_config_option(p)
    sensor_options.add_evaluate_args(p)
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    if sensor_options.is_sensor_protocol(args):  # skab / nab train per run: no --model
        return sensor_options.run_evaluate(args)
    if not args.model and not args.config:
        raise sensor_options.DataError("evaluate needs --model MODEL_DIR, --config FILE (or --protocol skab|nab)")
    streams = [c.path.stem for c in list_clips(args.data)] if not args.model else []
    d = decisions(args, streams=streams, health=None)
    model = load_model(d.model, device=args.device, threshold_override=d.threshold)
    bar = FileProgress("evaluate")
    try:
        res = evaluate_audio(model, args.data, hysteresis=d.hysteresis, channel=parse_channel(args.channel),
                             progress=bar,
                             condition_of=condition_lookup(args.conditions))
    finally:
        bar.close()
    results = res.pop("_results")
    if args.plots:
        res["plots"] = [str(p) for p in write_plots(Path(args.plots), model, res, results)]
    if args.format == "json":
        print_json(res)
        return 0
    print(f"model {res['model_version']}  scorer {res['scorer']}  data {res['data']}")
    print(f"clips {res['clips']} ({res['normal']} normal, {res['anomaly']} anomaly)")
    print(f"AUC  {fmt(res['auc'])}   pAUC(0.1) {fmt(res['pauc'])}")
    for d, m in res.get("domains", {}).items():
        print(f"  {d:7s} AUC {fmt(m['auc'])}   pAUC {fmt(m['pauc'])}")
    thr = res["threshold"]
    if thr:
        print(f"at threshold {thr['value']:.6g}{' (override)' if thr['overridden'] else ''}: "
              f"precision {fmt(res['precision'])}  recall {fmt(res['recall'])}  F1 {fmt(res['f1'])}  "
              f"FPR {fmt(res['fpr'])}")
    if res["read"]["skipped"]:
        print(f"skipped files: {res['read']['skipped']}")
    for p in res.get("plots", []):
        print(f"plot {p}")
    return 0


def write_plots(folder: Path, model, res: dict, results) -> list[Path]:
    from monitor.evaluation import plots  # noqa: PLC0415

    rows = res["rows"]
    y = np.array([r["label"] == "anomaly" for r in rows])
    s = np.array([r["score"] for r in rows])
    win = {r.name: np.array([w.score for w in r.windows]) for r in results}
    wn = np.concatenate([win[r["clip"]] for r in rows if r["label"] == "normal"] or [np.zeros(0)])
    wa = np.concatenate([win[r["clip"]] for r in rows if r["label"] == "anomaly"] or [np.zeros(0)])
    out = [plots.score_histogram(folder / "window_scores.png", normal=wn, anomaly=wa,
                                 threshold=model.threshold,
                                 title=f"{model.version}: 1 s window scores, test clips"),
           plots.score_histogram(folder / "clip_scores.png", normal=s[~y], anomaly=s[y],
                                 threshold=None, title=f"{model.version}: clip scores (DCASE)")]
    if y.any() and (~y).any():
        out.append(plots.roc_curve(folder / "roc.png", labels=y, scores=s, title=model.version))
    return out
