"""``monitor bench``: how many real-time streams one worker carries, against the ceiling."""
from __future__ import annotations

import argparse
import json
import signal
import sys
from pathlib import Path

HELP = "measure real-time capacity: DCASE way vs compute part, end to end via Kafka, cold start"


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("bench", help=HELP, description=HELP + " (BENCHMARKS.md §C: ratios within one run).")
    p.add_argument("--quick", action="store_true", help="small sizes: a smoke run in a few minutes")
    p.add_argument("--device", default="auto", help="auto, cpu or cuda[:N]")
    p.add_argument("--format", choices=("table", "json"), default="table")
    p.add_argument("--out", metavar="DIR", help="write bench.json and bench.png here")
    p.add_argument("--model", metavar="MODEL_DIR", help="a trained model (default: train a small one)")
    p.add_argument("--no-e2e", action="store_true", help="skip the end-to-end Kafka part")
    p.add_argument("--clips", type=int, default=0, help="10 s synthetic clips in the workload")
    p.add_argument("--scorers", help="comma-separated scorers for the other-scorer sweep (default: all "
                   "registered but the slow-to-fit ones; the quick run measures only the model's)")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from monitor.bench.report import table  # noqa: PLC0415
    from monitor.bench.suite import BenchOptions, run_bench, write_outputs  # noqa: PLC0415

    def stop(signum, _frame):  # SIGTERM (e.g. a CI timeout): unwind, so the broker and workers stop
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, stop)
    opts = BenchOptions(quick=args.quick, device=args.device, model=Path(args.model) if args.model else None,
                        e2e=not args.no_e2e, clips=args.clips,
                        scorers=args.scorers.split(",") if args.scorers else None)
    report = run_bench(opts)
    written = write_outputs(report, Path(args.out)) if args.out else []
    if args.format == "json":
        print(json.dumps(report, indent=2, default=str))
    else:
        print(table(report))
    for p in written:
        print(f"wrote {p}", file=sys.stderr)
    return 0
