"""The bench report as a table for people and a plot (compute sweep; e2e latency and CPU)."""
from __future__ import annotations

from pathlib import Path
from typing import Any


def _f(x: Any, spec: str = ",.0f") -> str:
    return "-" if x is None else format(x, spec)


def table(r: dict[str, Any]) -> str:
    m = r["machine"]
    lines = [f"monitor bench ({'quick' if r['quick'] else 'full'}) on {m['cpu']}, {m['cores']} cores, "
             f"device {r['device']}, torch {m['torch']}; load before/after {r['load_before']} / {r['load_after']}",
             "", f"{'figure':44s} {'value':>14s}"]
    rows = [
        ("DCASE way, real-time factor (x)", _f(r["dcase_way_rtf"])),
        ("compute part, real-time factor (x)", _f(r["compute_rtf"])),
        ("compute part / DCASE way", _f(r.get("compute_vs_dcase_way"), ".2f")),
        ("optimised / plain batched path", _f(r.get("fast_vs_plain"), ".2f")),
        ("max rel. score diff, optimised vs plain", _f(r["scores"]["max_rel_diff_fast_vs_plain"], ".1e")),
        ("max rel. score diff, vs DCASE way", _f(r["scores"].get("max_rel_diff_vs_dcase_way"), ".1e")),
        ("ceiling: ScoringPipeline streams (100 ms)", _f(r["ceiling_streams"])),
        ("end to end: sustained streams", _f(r["e2e_streams"])),
        ("end to end: streams per worker core", _f(r["e2e_streams_per_worker_core"])),
        ("p50 / p99 arrival-to-score at 50 % (ms)",
         f"{_f(r.get('p50_latency_ms'))} / {_f(r['p99_latency_ms'])}"),
        ("RSS per 1000 streams (MB)", _f(r["rss_mb_per_1000"])),
        ("cold start (s)", _f(r["cold_start_s"], ".2f")),
    ]
    lines += [f"{k:44s} {v:>14s}" for k, v in rows]
    if r.get("e2e_skipped_reason"):
        lines.append(f"end to end skipped: {r['e2e_skipped_reason']}")
    if r.get("dcase_way"):
        lines += ["", "DCASE way per clip       threads   RTF (median / best)   read  features  model"]
        for d in r["dcase_way"]:
            lines.append(f"  {d['variant']:22s} {d['threads']:7d}   {d['rtf_median']:8,.0f} / {d['rtf_best']:8,.0f}"
                         f"   {d.get('read_share', 0):5.0%}  {d['features_share']:7.0%}  {d['model_share']:5.0%}")
    lines += ["", "threads = torch intra-op x Python threads (each on a share of the clips)",
              "compute part    threads  clips/batch  vectors/batch   RTF (median / best)   features  model"]
    for c in r["compute"]:
        th = f"{c['threads']}x{c.get('workers', 1)}"
        lines.append(f"  {c['scorer']:12s} {th:>7s}  {c['clips_per_batch']:11d}  {c['vectors_per_batch']:13,d}"
                     f"   {c['rtf_median']:8,.0f} / {c['rtf_best']:8,.0f}   {c['features_share']:7.0%}  "
                     f"{c['model_share']:5.0%}")
    p = r["plain"]
    lines.append(f"  {'plain path':12s} {str(p['threads']) + 'x' + str(p.get('workers', 1)):>7s}  {p['clips_per_batch']:11d}  {'':13s}   "
                 f"{p['rtf_median']:8,.0f} {'':10s}   {p['features_share']:7.0%}  {p['model_share']:5.0%}")
    if r.get("scorers"):
        lines += ["", "scorer sweep (one batch of the same clips, scorers taking turns)   RTF per core"]
    for s in r.get("scorers", []):
        if s.get("error"):
            lines.append(f"  {s['scorer']:12s} not measured: {s['error']}")
        else:
            ref = " (reference)" if s.get("reference") else ""
            lines.append(f"  {s['scorer']:12s} {s['threads']:7d}  {s['clips_per_batch']:11d}  "
                         f"{s['vectors_per_batch']:13,d}   {s.get('rtf_per_core', s['rtf_median']):8,.0f} {'':10s}   "
                         f"{s['features_share']:7.0%}  {s['model_share']:5.0%}{ref}")
    return "\n".join(lines)


def plot(r: dict[str, Any], path: Path) -> Path | None:
    """Left: compute RTF per batch size and thread count; right: e2e latency and CPU vs streams."""
    import matplotlib  # noqa: PLC0415

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415

    fig, (a, b) = plt.subplots(1, 2, figsize=(11, 4))
    for th, wk in sorted({(c["threads"], c.get("workers", 1)) for c in r["compute"]}):
        rows = [c for c in r["compute"] if (c["threads"], c.get("workers", 1)) == (th, wk)]
        a.plot([c["vectors_per_batch"] for c in rows], [c["rtf_median"] for c in rows], "o-",
               label=f"compute part, {th} intra-op x {wk} Python thread(s)")
    if r.get("dcase_way_rtf"):
        a.axhline(r["dcase_way_rtf"], color="k", ls="--", label="DCASE way (per clip)")
    a.set_xscale("log")
    a.set_xlabel("vectors per batch")
    a.set_ylabel("real-time factor (streams)")
    a.legend(fontsize=8)
    a.set_title("compute part vs the DCASE way")
    steps = (r.get("e2e") or {}).get("steps") or []
    if steps:
        xs = [s["streams"] for s in steps]
        b.plot(xs, [s.get("p99_ms") for s in steps], "o-", label="p99 arrival-to-score (ms)")
        b.plot(xs, [s.get("p50_ms") for s in steps], "o-", label="p50 arrival-to-score (ms)")
        b.set_xscale("log")
        b.set_yscale("log")
        b.set_xlabel("concurrent real-time streams")
        b.set_ylabel("latency (ms)")
        b2 = b.twinx()
        b2.plot(xs, [s.get("worker_cpu") for s in steps], "s:", color="gray", label="worker CPU (cores)")
        b2.set_ylabel("worker CPU (cores)")
        b.legend(fontsize=8, loc="upper left")
        b.set_title("end to end through Kafka")
    else:
        b.text(0.5, 0.5, "end to end not measured\n" + str(r.get("e2e_skipped_reason", "")), ha="center",
               va="center", wrap=True, fontsize=8)
        b.set_axis_off()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
