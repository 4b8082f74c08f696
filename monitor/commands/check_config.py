"""``monitor check-config``: validate a config file and print the effective config (secrets masked)."""
from __future__ import annotations

import argparse

from monitor.config import dump, load_config

HELP = "validate a service config and print the effective values (secrets masked)"


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("check-config", aliases=["check_config"], help=HELP, description=HELP)
    p.add_argument("config", metavar="FILE.yaml")
    p.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE")
    p.add_argument("--load-models", action="store_true", help="also load every routed model")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    cfg = load_config(args.config, overrides=args.set)
    print(dump(cfg), end="")
    if args.load_models:
        from monitor.service.worker import models_of  # noqa: PLC0415

        for m in models_of(cfg):
            print(f"# model {m.folder} ({m.name} {m.version}, threshold {m.threshold.value:.5g})")
    print(f"# {args.config}: OK")
    return 0
