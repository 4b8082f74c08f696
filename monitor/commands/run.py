"""``monitor run``: the streaming service (N worker processes in one consumer group)."""
from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import subprocess
import sys
import time

from monitor.config import load_config
from monitor.errors import ConfigError

HELP = "run the streaming service: consume audio/sensor topics, score, publish events"
log = logging.getLogger("monitor")


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("run", help=HELP, description=HELP)
    p.add_argument("--config", required=True, metavar="FILE.yaml")
    p.add_argument("--workers", type=int, help="worker processes on this machine (overrides service.workers)")
    p.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE",
                   help="override a config key (repeatable; wins over the file and env)")
    p.add_argument("--worker-index", type=int, default=None, help=argparse.SUPPRESS)
    p.set_defaults(run=run)


#: how ``--workers N`` hands the ``--set`` overrides to its children: the environment (readable
#: by the same user only), never their command lines (readable by every user with ``ps``)
OVERRIDES_ENV = "MONITOR_RUN_OVERRIDES"


def run(args: argparse.Namespace) -> int:
    from monitor.config_checks import config_problems  # noqa: PLC0415

    overrides = list(args.set)
    inherited = os.environ.pop(OVERRIDES_ENV, None)
    if inherited:
        overrides = json.loads(inherited) + overrides
    cfg = load_config(args.config, overrides=overrides)
    problems = config_problems(cfg, routes_required=False)
    if problems:
        raise ConfigError(f"{args.config}: " + "; ".join(problems))
    n = args.workers or cfg.service.workers
    if args.worker_index is not None or n == 1:
        from monitor.service.worker import run_worker  # noqa: PLC0415

        return run_worker(cfg, index=args.worker_index or 0)
    return _supervise(args, n, overrides)


def _supervise(args: argparse.Namespace, n: int, overrides: list[str]) -> int:
    """Start ``n`` worker processes (each its own consumer in the group); forward SIGTERM/SIGINT."""
    base = [sys.executable, "-m", "monitor", "--log-level", args.log_level, "--log-format",
            "json" if args.log_format == "auto" and not sys.stderr.isatty() else args.log_format,
            "run", "--config", args.config]
    env = {**os.environ, OVERRIDES_ENV: json.dumps(overrides)}

    def spawn(i: int) -> subprocess.Popen:
        return subprocess.Popen(base + ["--worker-index", str(i)], env=env)

    procs = [spawn(i) for i in range(n)]
    log.info("started %d workers", n, extra={"pids": [p.pid for p in procs]})
    stopping = False

    def forward(signum, _frame):
        nonlocal stopping
        stopping = True
        for p in procs:
            if p.poll() is None:
                p.send_signal(signum)

    def forward_hup(signum, _frame):  # log rotation: every worker reopens its files
        for p in procs:
            if p.poll() is None:
                p.send_signal(signum)

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    signal.signal(signal.SIGHUP, forward_hup)
    while any(p.poll() is None for p in procs) or not stopping:
        time.sleep(0.2)
        for i, p in enumerate(procs):
            if not stopping and p.returncode == 2:
                # a settings problem (config, TLS, authentication): every restart would fail alike
                log.error("worker %d exited with code 2 (a settings problem, said above); stopping", i)
                forward(signal.SIGTERM, None)
                for q in procs:
                    q.wait(30)
                return 2
            if not stopping and p.poll() is not None:
                # a crashed worker's partitions move to the others; start a new one in its place
                log.error("worker %d exited with code %s; restarting it", i, p.returncode)
                time.sleep(1.0)
                procs[i] = spawn(i)
    codes = [p.returncode for p in procs]
    return max(codes, key=abs) if any(codes) else 0
