"""Regenerate the README's result tables from ``benchmarks/results/``.

Each table sits between ``<!-- table:NAME -->`` and ``<!-- /table:NAME -->`` in README.md and is
written by the function ``TABLES[NAME]`` from committed result files only, so the README never
holds a figure that no result file backs. ``--check`` exits 1 when README.md is out of date.

    python benchmarks/readme_tables.py          # rewrite README.md
    python benchmarks/readme_tables.py --check  # CI: fail on a stale table
"""
from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
README = ROOT / "README.md"


def _latest_full_bench() -> tuple[Path, dict]:
    runs = []
    for path in sorted((RESULTS / "bench").glob("*.json")):
        r = json.loads(path.read_text())
        if not r.get("quick"):
            runs.append((r.get("started", ""), path, r))
    if not runs:
        raise SystemExit(f"no full bench run in {RESULTS / 'bench'}")
    _, path, r = max(runs, key=lambda x: x[0])
    return path, r


def _rss_at_1000(r: dict) -> float | None:
    sys.path.insert(0, str(ROOT))
    from monitor.bench.e2e import _rss_per_1000  # noqa: PLC0415 - the bench's own rule

    steps = [s for s in (r.get("e2e") or {}).get("steps", []) if s.get("worker_rss_mb")]
    return _rss_per_1000(steps)


def bench_table() -> str:
    """The latest full `monitor bench` run: its headline ratios and end-to-end figures."""
    path, r = _latest_full_bench()
    sc = r.get("scores") or {}
    rss = _rss_at_1000(r)
    rows = [
        ("DCASE way / compute part, real-time factor", f"{r['dcase_way_rtf']:,.0f}x / {r['compute_rtf']:,.0f}x"),
        ("**compute part / DCASE way**", f"**{r['compute_vs_dcase_way']:.2f}x**"),
        ("max relative clip-score difference, optimised vs plain / vs DCASE way",
         f"{sc.get('max_rel_diff_fast_vs_plain', float('nan')):.1e} / {sc.get('max_rel_diff_vs_dcase_way', float('nan')):.1e}"),
        ("ceiling: `ScoringPipeline` streams", f"{r['ceiling_streams']:,.0f}"),
        ("**end to end: sustained real-time streams (one worker)**", f"**{r['e2e_streams']:,}**"),
        ("end to end: streams per worker core", f"{r['e2e_streams_per_worker_core']:,.0f}"),
        ("p50 / p99 chunk arrival-to-window-score at ~50 % load (ms)",
         f"{r['p50_latency_ms']:.0f} / {r['p99_latency_ms']:.0f}"),
        ("worker RSS at 1,000 streams (MB)", "-" if rss is None else f"{rss:,.0f}"),
        ("cold start with Kafka (s)", f"{r['cold_start_s']:.2f}"),
    ]
    load = r.get("load_before") or []
    head = (f"`{path.relative_to(ROOT)}` (started {r.get('started', '?')}, load {load[0] if load else '?'} "
            f"at start, {r.get('bench_seconds', '?')} s)")
    lines = [head, "", "| figure | value |", "|---|---|"] + [f"| {a} | {b} |" for a, b in rows]
    return "\n".join(lines)


TABLES: dict[str, Callable[[], str]] = {"bench": bench_table}


def render(text: str) -> str:
    for name, make in TABLES.items():
        pat = re.compile(rf"(<!-- table:{name} -->\n).*?(<!-- /table:{name} -->)", re.S)
        if not pat.search(text):
            raise SystemExit(f"README.md has no <!-- table:{name} --> block")
        text = pat.sub(lambda m: m.group(1) + make() + "\n" + m.group(2), text)
    return text


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--check", action="store_true", help="exit 1 if README.md is out of date")
    args = p.parse_args(argv)
    old = README.read_text()
    new = render(old)
    if args.check:
        if new != old:
            print("README.md tables are out of date: run python benchmarks/readme_tables.py")
            return 1
        return 0
    README.write_text(new)
    return 0


if __name__ == "__main__":
    sys.exit(main())
