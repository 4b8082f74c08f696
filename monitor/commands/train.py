"""``monitor train``: train a scorer on normal clips and save a versioned model folder."""
from __future__ import annotations

import argparse

from models.registry import SCORERS
from models.threshold import CONVENTIONS, METHODS

from ..training import TrainOptions, train_audio
from .common import EpochProgress, fmt

HELP = "train a scorer on normal clips; writes MODEL_DIR/<version>/ and MODEL_DIR/latest"


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("train", help=HELP, description=HELP)
    p.add_argument("--scorer", default="ae", help=f"scorer name ({', '.join(sorted(SCORERS))})")
    p.add_argument("--data", required=True, help="folder of .wav clips; clips named 'normal' are used")
    p.add_argument("--out", required=True, metavar="MODEL_DIR", help="model folder to write")
    p.add_argument("--epochs", type=int, help="training epochs (scorer default if omitted)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="auto", help="auto (CUDA when present), cpu or cuda")
    p.add_argument("--threshold-method", default="gamma", choices=METHODS)
    p.add_argument("--threshold-convention", default="dcase", choices=sorted(CONVENTIONS),
                   help="gamma convention: dcase (loc free, ppf .9) or paper (loc 0, ppf .99)")
    p.add_argument("--threshold-q", type=float, help="quantile for the threshold (convention default)")
    p.add_argument("--holdout", type=float, default=0.1,
                   help="fraction of normal clips held out to fit the threshold (at least 3)")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    opts = TrainOptions(scorer=args.scorer, seed=args.seed, device=args.device, epochs=args.epochs,
                        threshold_method=args.threshold_method,
                        threshold_convention=args.threshold_convention,
                        threshold_q=args.threshold_q, holdout=args.holdout)
    progress = EpochProgress(f"train {args.scorer}")
    try:
        folder, meta = train_audio(args.data, args.out, opts, progress=progress)
    finally:
        progress.close()
    thr, tr = meta["threshold"], meta["training"]
    print(f"model     {folder}")
    print(f"version   {meta['model_version']}")
    print(f"trained   {tr['train_clips']} clips, {tr['fit']['n_windows']} vectors, "
          f"{tr['fit']['epochs']} epochs, loss {tr['fit']['final_loss']:.5g}, {tr['seconds']:.1f} s")
    print(f"threshold {thr['value']:.6g} ({thr['method']}/{thr['convention']}, q={fmt(thr['q'])}, "
          f"{thr['fitted_on']})")
    return 0
