"""``monitor run``: the streaming service (N worker processes in one consumer group)."""
from __future__ import annotations

import argparse
import logging
import os
import signal
import subprocess
import sys
import time

from monitor.config import load_config

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


def run(args: argparse.Namespace) -> int:
    cfg = load_config(args.config, overrides=args.set)
    n = args.workers or cfg.service.workers
    if args.worker_index is not None or n == 1:
        from monitor.service.worker import run_worker  # noqa: PLC0415

        return run_worker(cfg, index=args.worker_index or 0)
    return _supervise(args, n)


def _supervise(args: argparse.Namespace, n: int) -> int:
    """Start ``n`` worker processes (each its own consumer in the group); forward SIGTERM/SIGINT."""
    base = [sys.executable, "-m", "monitor", "--log-level", args.log_level, "--log-format",
            "json" if args.log_format == "auto" and not sys.stderr.isatty() else args.log_format,
            "run", "--config", args.config]
    for s in args.set:
        base += ["--set", s]
    def spawn(i: int) -> subprocess.Popen:
        return subprocess.Popen(base + ["--worker-index", str(i)], env=os.environ.copy())

    procs = [spawn(i) for i in range(n)]
    log.info("started %d workers", n, extra={"pids": [p.pid for p in procs]})
    stopping = False

    def forward(signum, _frame):
        nonlocal stopping
        stopping = True
        for p in procs:
            if p.poll() is None:
                p.send_signal(signum)

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    while any(p.poll() is None for p in procs) or not stopping:
        time.sleep(0.2)
        for i, p in enumerate(procs):
            if not stopping and p.poll() is not None:
                # a crashed worker's partitions move to the others; start a new one in its place
                log.error("worker %d exited with code %s; restarting it", i, p.returncode)
                time.sleep(1.0)
                procs[i] = spawn(i)
    codes = [p.returncode for p in procs]
    return max(codes, key=abs) if any(codes) else 0
