"""``monitor check-config``: validate a config file and print the effective config (secrets masked).

Without a broker it checks what can be known from the file and this machine; ``--connect``
opens a real connection with the configured TLS and SASL settings and names what fails.
"""
from __future__ import annotations

import argparse

from monitor.config import dump, load_config
from monitor.errors import ConfigError

HELP = "validate a service config and print the effective values (secrets masked)"


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("check-config", aliases=["check_config"], help=HELP, description=HELP)
    p.add_argument("config", metavar="FILE.yaml")
    p.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE")
    p.add_argument("--load-models", action="store_true", help="also load every routed model")
    p.add_argument("--connect", action="store_true", help="also connect to Kafka with these settings "
                   "(exit 2: TLS or authentication refused, 69: unreachable)")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from monitor.config_checks import config_problems  # noqa: PLC0415

    cfg = load_config(args.config, overrides=args.set)
    problems = config_problems(cfg)
    if problems:
        raise ConfigError(f"{args.config}: " + "; ".join(problems))
    print(dump(cfg), end="")
    if args.load_models:
        from monitor.service.worker import models_of  # noqa: PLC0415

        for m in models_of(cfg):
            print(f"# model {m.folder} ({m.name} {m.version}, threshold {m.threshold.value:.5g})")
    if args.connect:
        from monitor.kafka.connect import check_connection  # noqa: PLC0415

        print(f"# Kafka: {check_connection(cfg.kafka)}")
    print(f"# {args.config}: OK")
    return 0
