"""``monitor bench``: every figure of BENCHMARKS.md §C, measured side by side in one run.

The machines are shared and noisy, so ratios are taken within one run and the headline pair
(the DCASE way and the compute part) is measured in interleaved rounds: a burst of load from
elsewhere hits both, not one. Medians are reported; the sweep tables keep the best too.
"""
from __future__ import annotations

import json
import logging
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from models.base import resolve_device
from workers.model import LoadedModel, load_model

from monitor.config import ServiceConfig
from monitor.service.process_tuning import keep_heap
from monitor.bench.compute import Split, parallel_clip_scores, plain_mode, streaming_pass, time_repeated, torch_threads
from monitor.bench.workload import Workload, load_average, machine_info, make_clips, train_bench_model

log = logging.getLogger(__name__)

#: Left out of the default sweep (``--scorers NAME`` measures them anyway).
SLOW_TO_FIT = {"arima": "not in the default sweep: a sensor scorer whose fit on 128 mel bands took "
                        "~3 min here (--scorers arima measures it)"}

REQUIRED_KEYS = ("dcase_way_rtf", "compute_rtf", "e2e_streams", "e2e_streams_per_worker_core",
                 "ceiling_streams", "p99_latency_ms", "rss_mb_per_1000", "cold_start_s")


@dataclass
class BenchOptions:
    quick: bool = False
    device: str = "auto"
    out: Path | None = None
    model: Path | None = None
    e2e: bool = True
    scorers: list[str] | None = None  # compute sweep; default: the model's scorer (+ all, full run)
    seed: int = 0
    # sizes, set from ``quick`` unless given
    clips: int = 0
    clip_seconds: float = 10.0
    min_seconds: float = 0.0
    rounds: int = 0
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.clips = self.clips or (8 if self.quick else 32)
        self.min_seconds = self.min_seconds or (0.4 if self.quick else 1.5)
        self.rounds = self.rounds or (3 if self.quick else 9)


def rel_diff(a: np.ndarray, b: np.ndarray) -> float:
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    return float(np.max(np.abs(a - b) / np.maximum(np.abs(b), 1e-30))) if len(a) else 0.0


def thread_choices() -> list[int]:
    return sorted({1, min(2, os.cpu_count() or 1)})


def settings() -> list[tuple[int, int]]:
    """(torch intra-op threads, Python threads each on a share of the clips) to try."""
    return [(1, 1)] + ([(2, 1), (1, 2)] if (os.cpu_count() or 1) >= 2 else [])


def _compute(model: LoadedModel, pcm: list, row: dict, split: Split | None = None):
    return parallel_clip_scores(model, pcm, clips_per_batch=row["clips_per_batch"], threads=row["workers"],
                                split=split)


def run_bench(opts: BenchOptions) -> dict[str, Any]:
    t_start = time.perf_counter()
    device = resolve_device(opts.device)  # `cuda` without a GPU is a clear error here
    report: dict[str, Any] = {"protocol": "BENCHMARKS.md §C", "quick": opts.quick, "device": str(device),
                              "machine": machine_info(), "load_before": load_average(),
                              "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    # the compute part is a worker's work per flush: measure it in a process set up like one
    # (the DCASE way shares the process and the setting; it allocates per clip, not per batch)
    keep_mb = ServiceConfig().heap_keep_mb
    report["heap_keep_mb"] = keep_mb if keep_heap(keep_mb) else 0
    tmp = tempfile.TemporaryDirectory(prefix="monitor-bench-")
    work = Path(tmp.name)
    try:
        model_dir = opts.model or train_bench_model(work, epochs=2 if opts.quick else 5, seed=opts.seed)
        report["model"] = str(model_dir)
        model = load_model(model_dir, device=device)
        clips = make_clips(work / "clips", n=opts.clips, seconds=opts.clip_seconds, seed=opts.seed)
        report["workload"] = {"clips": opts.clips, "clip_seconds": opts.clip_seconds,
                              "audio_seconds": clips.seconds, "scorer": model.name,
                              "vectors_per_clip": _vectors_per_clip(model, clips)}
        report.update(compute_section(model, clips, opts))
        if not opts.quick or opts.scorers:
            report["scorers"] = other_scorers(work, clips, opts, skip=model.name, device=device,
                                              threads=report["headline"]["compute_setting"]["threads"]
                                              if report.get("headline") else 1, reference=model)
        report["cold_start"] = cold_start(model_dir, device=str(device), runs=1 if opts.quick else 3)
        report["cold_start_s"] = report["cold_start"]["seconds"]
        from monitor.bench.e2e import e2e_skipped, end_to_end  # noqa: PLC0415 - Kafka client when used

        if opts.e2e:
            report.update(end_to_end(model_dir, opts=opts, ceiling=report["ceiling_streams"]))
            if report.get("cold_start_kafka_s") is not None:  # with Kafka: partitions assigned too
                report["cold_start_s"] = report["cold_start_kafka_s"]
        else:
            report.update(e2e_skipped("not requested (--no-e2e)"))
    finally:
        tmp.cleanup()
    report["load_after"] = load_average()
    report["bench_seconds"] = round(time.perf_counter() - t_start, 1)
    for key in REQUIRED_KEYS:
        report.setdefault(key, None)
    return report



def _vectors_per_clip(model: LoadedModel, clips: Workload) -> int:
    fe, spec = model.frontend, model.scorer.input_spec
    frames = fe.spec.frames_in(len(clips.pcm[0]))
    return max(0, (frames - spec.frames) // spec.hop + 1)


def compute_section(model: LoadedModel, clips: Workload, opts: BenchOptions) -> dict[str, Any]:
    """The DCASE way, the compute part per batch size and thread count, the streaming ceiling."""
    from monitor.bench.dcase import DcaseWay  # noqa: PLC0415 - imports librosa

    secs, vpc = clips.seconds, _vectors_per_clip(model, clips)
    on_cpu = model.device.type == "cpu"
    out: dict[str, Any] = {}

    # 1. the DCASE way (CPU, one clip at a time), both variants, one and two torch threads
    dcase_rows, ways = [], {}
    if on_cpu:
        for tuned in (False, True):
            way = ways[tuned] = DcaseWay(model, tuned=tuned)
            for th in (thread_choices() if not opts.quick else [1]):
                with torch_threads(th):
                    way.scores(clips.paths[:2])  # warm-up (librosa's numba JIT, caches)
                    split = Split()
                    times = time_repeated(lambda: way.scores(clips.paths, split), min_seconds=opts.min_seconds)
                dcase_rows.append({"variant": "tuned" if tuned else "baseline", "threads": th,
                                   "rtf_median": secs / statistics.median(times), "rtf_best": secs / min(times),
                                   **_shares(split)})
        best_dcase = max(dcase_rows, key=lambda r: r["rtf_median"])
        out["dcase_way"] = dcase_rows

    # 2. the compute part: batch size x threads (optimised), and the plain path at the best
    batches = sorted({1, 4, 16, opts.clips} if not opts.quick else {1, opts.clips})
    rows = []
    for th, workers in settings():
        with torch_threads(th):
            for b in batches:
                row = {"scorer": model.name, "threads": th, "workers": workers, "clips_per_batch": b,
                       "vectors_per_batch": b * vpc}
                _compute(model, clips.pcm[:b * workers], row)  # warm-up
                split = Split()
                times = time_repeated(lambda: _compute(model, clips.pcm, row, split), min_seconds=opts.min_seconds)
                rows.append({**row, "rtf_median": secs / statistics.median(times), "rtf_best": secs / min(times),
                             **_shares(split)})
    best = max(rows, key=lambda r: r["rtf_median"])
    out["compute"] = rows
    with torch_threads(best["threads"]), plain_mode(model):
        _compute(model, clips.pcm[:best["clips_per_batch"]], best)
        split = Split()
        times = time_repeated(lambda: _compute(model, clips.pcm, best, split), min_seconds=opts.min_seconds)
        out["plain"] = {"threads": best["threads"], "workers": best["workers"],
                        "clips_per_batch": best["clips_per_batch"],
                        "rtf_median": secs / statistics.median(times), **_shares(split)}
        plain_scores = _compute(model, clips.pcm, best)
    with torch_threads(best["threads"]):
        fast_scores = _compute(model, clips.pcm, best)
    out["scores"] = {"max_rel_diff_fast_vs_plain": rel_diff(fast_scores, plain_scores),
                     "clips_compared": len(fast_scores)}

    # 3. headline pair, interleaved rounds: DCASE way (its faster setting) vs the compute part
    if on_cpu:
        way = ways[best_dcase["variant"] == "tuned"]
        # each round times both sides over at least round_s (a single 40 ms call of the compute
        # part measured mostly scheduler jitter); a round's figure is its median call
        round_s = opts.min_seconds / 3
        d_times, c_times = [], []
        for _ in range(opts.rounds):
            with torch_threads(best_dcase["threads"]):
                d_times.append(statistics.median(time_repeated(lambda: way.scores(clips.paths),
                                                               min_seconds=round_s, min_reps=1)))
            with torch_threads(best["threads"]):
                c_times.append(statistics.median(time_repeated(lambda: _compute(model, clips.pcm, best),
                                                               min_seconds=round_s, min_reps=1)))
        dcase_scores = way.scores(clips.paths)
        out["dcase_way_rtf"] = secs / statistics.median(d_times)
        out["compute_rtf"] = secs / statistics.median(c_times)
        out["compute_vs_dcase_way"] = out["compute_rtf"] / out["dcase_way_rtf"]
        out["headline"] = {"rounds": opts.rounds, "dcase_setting": {k: best_dcase[k] for k in ("variant", "threads")},
                           "compute_setting": {k: best[k] for k in ("threads", "workers", "clips_per_batch")},
                           "dcase_rtf_rounds": [secs / t for t in d_times],
                           "compute_rtf_rounds": [secs / t for t in c_times]}
        out["scores"]["max_rel_diff_vs_dcase_way"] = rel_diff(fast_scores, dcase_scores)
    else:
        out["dcase_way_rtf"] = None
        out["compute_rtf"] = best["rtf_median"]
    out["fast_vs_plain"] = out["compute_rtf"] / out["plain"]["rtf_median"]

    # 4. the streaming ceiling: ScoringPipeline with 100 ms chunks from every clip at once
    with torch_threads(1):  # a worker's setting (service.torch_threads)
        streaming_pass(model, [p[: 16000 * 2] for p in clips.pcm])  # warm-up
        s_times = []
        for _ in range(max(2, opts.rounds // 3)):
            wall, n_windows = streaming_pass(model, clips.pcm)
            s_times.append(wall)
    out["ceiling_streams"] = secs / statistics.median(s_times)
    out["ceiling"] = {"what": "ScoringPipeline, 100 ms chunks, flush every 500 ms, all clips as streams",
                      "streams": len(clips.pcm), "threads": 1, "windows_per_pass": n_windows,
                      "rtf_rounds": [secs / t for t in s_times]}
    return out


def other_scorers(work: Path, clips: Workload, opts: BenchOptions, *, skip: str, device,
                  threads: int, reference: LoadedModel | None = None) -> list[dict[str, Any]]:
    """The compute part for every other registered scorer (briefly trained, default size).

    Every scorer scores the same clips in one batch on ``threads`` torch threads, and the
    scorers take turns: ``opts.rounds`` rounds, each timing every scorer once, a scorer's
    figure the median of its rounds, so that a change of load during the sweep moves all of
    them alike and their ratios hold. ``reference`` (the headline model, ``skip``) is
    measured the same way, first in the list, marked ``reference``: the figure the others
    compare with. ``rtf_per_core`` divides by the torch threads.
    """
    from models.registry import SCORERS  # noqa: PLC0415

    rows: list[dict[str, Any]] = []
    ready: list[tuple[dict[str, Any], LoadedModel]] = []
    pcm = clips.pcm[: max(2, len(clips.pcm) // 4)]
    secs = len(pcm) * opts.clip_seconds
    names = [n for n in (opts.scorers or sorted(SCORERS)) if n != skip]
    if reference is not None:
        names = [skip, *names]
    for name in names:
        if not opts.scorers and name in SLOW_TO_FIT:
            rows.append({"scorer": name, "error": SLOW_TO_FIT[name]})
            continue
        try:
            if name == skip and reference is not None:
                m = reference
            else:
                folder = train_bench_model(work / f"scorer-{name}", scorer=name, epochs=1, seed=opts.seed)
                m = load_model(folder, device=device)
            with torch_threads(threads):
                t0 = time.perf_counter()
                parallel_clip_scores(m, pcm[:1], clips_per_batch=1, threads=1)  # warm-up
                if time.perf_counter() - t0 > 20:
                    raise RuntimeError("too slow to measure here (one clip took over 20 s)")
            row = {"scorer": name, "threads": threads, "clips_per_batch": len(pcm),
                   "vectors_per_batch": len(pcm) * _vectors_per_clip(m, clips)}
            if name == skip:
                row["reference"] = True
            rows.append(row)
            ready.append((row, m))
        except Exception as exc:  # noqa: BLE001 - a scorer that cannot run on audio is reported, not fatal
            msg = str(exc).strip().splitlines()[0][:160] if str(exc).strip() else type(exc).__name__
            rows.append({"scorer": name, "error": msg})
            log.info("scorer measured", extra=rows[-1])
    times: dict[int, list[float]] = {id(r): [] for r, _ in ready}
    splits = {id(r): Split() for r, _ in ready}
    round_s = opts.min_seconds / 3
    with torch_threads(threads):
        for _ in range(opts.rounds):
            for row, m in ready:
                t = time_repeated(lambda: parallel_clip_scores(m, pcm, clips_per_batch=len(pcm), threads=1,
                                                               split=splits[id(row)]),
                                  min_seconds=round_s, min_reps=1, max_reps=5)
                times[id(row)].append(statistics.median(t))
    for row, _ in ready:
        t = times[id(row)]
        row.update({"rtf_median": secs / statistics.median(t), "rtf_per_core": secs / statistics.median(t) / threads,
                    "rtf_rounds": [secs / x for x in t], **_shares(splits[id(row)])})
        log.info("scorer measured", extra=row)
    return rows


def _shares(split: Split) -> dict[str, float]:
    total = split.seconds or 1.0
    d = {"features_share": split.features_s / total, "model_share": split.model_s / total}
    if split.read_s:
        d["read_share"] = split.read_s / total
    return d


def cold_start(model_dir: Path, *, device: str, runs: int) -> dict[str, Any]:
    """Process start -> model loaded -> first window scored, in a fresh interpreter."""
    results = []
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(Path(__file__).resolve().parents[2]),
                                                        os.environ.get("PYTHONPATH", "")])}
    for _ in range(runs):
        t0 = time.time()
        proc = subprocess.run([sys.executable, "-m", "monitor.bench.coldstart", repr(t0), str(model_dir), device],
                              capture_output=True, text=True, timeout=120, env=env)
        if proc.returncode != 0:
            raise RuntimeError(f"cold-start probe failed: {proc.stderr.strip()[-500:]}")
        results.append(json.loads(proc.stdout.strip().splitlines()[-1]))
    med = sorted(results, key=lambda r: r["phases"]["first_window_scored"])[len(results) // 2]
    return {"seconds": med["phases"]["first_window_scored"], "phases": med["phases"], "runs": runs,
            "all_seconds": [r["phases"]["first_window_scored"] for r in results],
            "librosa_imported": med["librosa_imported"], "numba_imported": med["numba_imported"],
            "what": "fresh process: imports, model load, first 1 s window scored (no Kafka)"}


def write_outputs(report: dict[str, Any], out: Path) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    paths = [out / "bench.json"]
    paths[0].write_text(json.dumps(report, indent=2, default=_jsonable) + "\n")
    from monitor.bench.report import plot  # noqa: PLC0415

    png = plot(report, out / "bench.png")
    if png is not None:
        paths.append(png)
    return paths


def _jsonable(o: Any) -> Any:
    if isinstance(o, (np.generic,)):
        return o.item()
    if isinstance(o, Path):
        return str(o)
    return str(o)

