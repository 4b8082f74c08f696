"""``monitor train``: train a scorer on normal clips and save a versioned model folder."""
from __future__ import annotations

import argparse

from models.registry import SCORERS, scorer_class
from models.threshold import CONVENTIONS, METHODS

from monitor.errors import DataError
from monitor.training.audio import TrainOptions, train_audio
from monitor.training.retrain import retrain_from_labels
from monitor.training.sensors import SENSOR_HOLDOUT
from monitor.commands import sensor_options
from monitor.commands.common import EpochProgress, add_channel_arg, fmt
from monitor.datasets import parse_channel
from monitor.training.checks import check_out_writable, validate_train_args

HELP = "train a scorer on normal clips; writes MODEL_DIR/<version>/ and MODEL_DIR/latest"


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("train", help=HELP, description=HELP)
    p.add_argument("--scorer", default="ae", help=f"scorer name ({', '.join(sorted(SCORERS))})")
    p.add_argument("--data", help="folder of .wav clips; clips named 'normal' (or --normal) are used "
                   "(with --from-model: default the model's own training folder)")
    p.add_argument("--normal", metavar="GLOB", help="file names of the normal clips, e.g. '*' or "
                   "'pump_rec_*.wav' (default: names carrying the token 'normal')")
    add_channel_arg(p)
    p.add_argument("--out", metavar="MODEL_DIR", help="model folder to write "
                   "(with --from-model: default the model's own root)")
    p.add_argument("--weak", metavar="DIR", help="labelled anomaly clips (weakly-supervised "
                   "scorers: ws-ae stage 2); without it ws-ae trains stage 1 only")
    p.add_argument("--from-model", metavar="MODEL_DIR", help="retrain this ws-ae model from "
                   "operator labels (--labels); writes a new version and moves latest")
    p.add_argument("--labels", metavar="LABELS", help="labels file written by `monitor label`")
    p.add_argument("--margin-factor", type=float, default=2.0,
                   help="with --from-model: stage-2 margin = max(stored margin, this x the "
                        "alerting threshold); labelled events already scored past the threshold")
    p.add_argument("--conditions", metavar="CSV", help="condition-clf: clip -> condition columns "
                   "(default: the condition in the clip names, e.g. DCASE section and attributes)")
    p.add_argument("--exposure", metavar="DIR", help="condition-clf: other machines' normal clips, "
                   "learnt as a 'not this machine' class")
    p.add_argument("--epochs", type=int, help="training epochs (scorer default if omitted)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="auto", help="auto (CUDA when present), cpu or cuda")
    p.add_argument("--threshold-method", default="gamma", choices=METHODS)
    p.add_argument("--threshold-convention", default=None, choices=sorted(CONVENTIONS),
                   help="gamma convention: dcase (loc free, ppf .9; refitted with loc 0 when the "
                        "free fit degenerates to shape <= 1) or paper (loc 0, ppf .99); "
                        "default: the scorer's (paper for ws-ae, dcase otherwise)")
    p.add_argument("--threshold-q", type=float, help="quantile for the threshold (convention default)")
    p.add_argument("--holdout", type=float,
                   help=f"fraction held out to fit the threshold (default: {TrainOptions.holdout:g} of the "
                        f"normal clips, at least {TrainOptions.min_holdout}; sensors: the last "
                        f"{SENSOR_HOLDOUT:g} of each segment's rows)")
    p.add_argument("--threshold-folds", type=int, metavar="K",
                   help="fit the threshold on out-of-fold scores of every normal clip instead: the "
                        "recipe is retrained K times, each without a K-th of the clips (K extra "
                        "trainings; the held-out fit is kept in meta as a variant); 0 = on the "
                        "held-out clips. Default: the scorer's (5 for condition-clf, else 0)")
    sensor_options.add_train_args(p)
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    validate_train_args(args)  # before any data is read: a mistake costs seconds, not a run
    if args.out:
        check_out_writable(args.out)
    if sensor_options.is_sensor(args):  # --time-column: sensor CSV data
        if args.threshold_folds:
            raise DataError("--threshold-folds is for audio models (sensor thresholds are fitted on "
                            "the held-out rows)")
        return sensor_options.run_train(args)
    if args.from_model or args.labels:
        return _retrain(args)
    if not args.data or not args.out:
        raise DataError("train needs --data DIR and --out MODEL_DIR (or --from-model with --labels)")
    opts = TrainOptions(scorer=args.scorer, seed=args.seed, device=args.device, epochs=args.epochs,
                        threshold_method=args.threshold_method,
                        threshold_convention=args.threshold_convention,
                        threshold_q=args.threshold_q,
                        holdout=TrainOptions.holdout if args.holdout is None else args.holdout,
                        threshold_folds=(scorer_class(args.scorer).threshold_folds
                                         if args.threshold_folds is None else args.threshold_folds),
                        normal_glob=args.normal,
                        channel=parse_channel(args.channel), conditions=args.conditions,
                        exposure=args.exposure)
    progress = EpochProgress(f"train {args.scorer}")
    try:
        folder, meta = train_audio(args.data, args.out, opts, progress=progress, weak=args.weak)
    finally:
        progress.close()
    _print_model(folder, meta)
    return 0


def _retrain(args: argparse.Namespace) -> int:
    if not (args.from_model and args.labels):
        raise DataError("retraining from labels needs both --from-model MODEL_DIR and --labels LABELS")
    if args.weak:
        raise DataError("--weak trains a new model; with --from-model the labels file gives the anomalies")
    progress = EpochProgress("retrain")
    try:
        folder, meta = retrain_from_labels(args.from_model, args.labels, out=args.out, data=args.data,
                                           epochs=args.epochs, device=args.device,
                                           margin_factor=args.margin_factor, progress=progress)
    finally:
        progress.close()
    skipped = meta["training"].get("retrain_skipped")
    if skipped:
        print(f"unchanged {folder} (version {meta['model_version']}): no new version written")
        print(f"because   {skipped}")
        return 0
    _print_model(folder, meta)
    return 0


def _print_model(folder, meta: dict) -> None:
    thr, tr = meta["threshold"], meta["training"]
    print(f"model     {folder}")
    print(f"version   {meta['model_version']}")
    print(f"trained   {tr['train_clips']} clips, {tr['fit']['n_windows']} vectors, "
          f"{tr['fit']['epochs']} epochs, loss {tr['fit']['final_loss']:.5g}, {tr['seconds']:.1f} s")
    print(f"threshold {thr['value']:.6g} ({thr['method']}/{thr['convention']}, q={fmt(thr['q'])}, "
          f"{thr['fitted_on']})")
    if "stage" in tr:
        print(f"stages    {tr['stage']}")
    variant = meta.get("threshold_variants", {}).get("training_windows", {})
    if "value" in variant:
        print(f"          (paper variant, fitted on training windows: {variant['value']:.6g})")
    held = meta.get("threshold_variants", {}).get("held_out_windows", {})
    if "value" in held:
        print(f"          (fitted on the held-out clips alone: {held['value']:.6g})")
