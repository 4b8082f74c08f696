"""The ``monitor`` command: one entry point, one module per subcommand."""
from __future__ import annotations

import argparse
import logging
import sys

from monitor.errors import MonitorError

from monitor import __version__
from monitor.commands import broker, check_config, demo, evaluate, produce, replay, train
from monitor.commands import run as run_cmd
from monitor.commands import bench
from monitor.commands import devices, listen
from monitor.commands import label
from monitor.commands import events
from monitor.commands import ui
from monitor.logs import setup_logging

COMMANDS = [train, evaluate, replay, demo, run_cmd, produce, check_config, broker, bench, listen, devices, label,
            events, ui]


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="monitor", description="Real-time anomaly monitor for machine "
                                "sound and sensor streams.")
    p.add_argument("--version", action="version", version=f"monitor {__version__}")
    p.add_argument("--log-level", default="info", choices=("debug", "info", "warning", "error"))
    p.add_argument("--log-format", default="auto", choices=("auto", "json", "text"),
                   help="auto = text on a terminal, JSON lines otherwise")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    for cmd in COMMANDS:
        cmd.add_parser(sub)
    _global_options_everywhere(p)
    return p


def _global_options_everywhere(parser: argparse.ArgumentParser) -> None:
    """``--log-level``/``--log-format`` also after the subcommand (``monitor run --log-level
    debug``); SUPPRESS keeps a subcommand from resetting a value given before it."""
    for action in parser._actions:
        if not isinstance(action, argparse._SubParsersAction):
            continue
        for child in set(action.choices.values()):
            child.add_argument("--log-level", default=argparse.SUPPRESS,
                               choices=("debug", "info", "warning", "error"), help=argparse.SUPPRESS)
            child.add_argument("--log-format", default=argparse.SUPPRESS, choices=("auto", "json", "text"),
                               help=argparse.SUPPRESS)
            _global_options_everywhere(child)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "run", None):
        parser.print_help()
        return 2
    setup_logging(level=args.log_level, fmt=args.log_format)
    try:
        return int(args.run(args) or 0)
    except MonitorError as exc:
        print(f"monitor {args.command}: error: {exc}", file=sys.stderr)
        return getattr(exc, "exit_code", 2)
    except KeyboardInterrupt:
        logging.getLogger("monitor").warning("interrupted")
        return 130


if __name__ == "__main__":
    sys.exit(main())
