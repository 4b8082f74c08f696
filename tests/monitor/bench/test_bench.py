"""``monitor bench``: a smoke run that completes with every key, and its clear errors.

Benchmarks are not timed tests: nothing here asserts a speed, only that the figures exist,
are positive where measured, and that the optimised and plain paths score alike.
"""
from __future__ import annotations

import json
import subprocess
import sys

import pytest
import torch

from monitor.bench.report import table
from monitor.bench.e2e import e2e_skipped
from monitor.bench.suite import REQUIRED_KEYS, rel_diff
from monitor.cli import main


def test_rel_diff_and_skip_record():
    assert rel_diff([1.0, 2.0], [1.0, 2.0]) == 0.0
    assert abs(rel_diff([1.1], [1.0]) - 0.1) < 1e-12
    skipped = e2e_skipped("no broker")
    assert skipped["e2e_streams"] is None and skipped["e2e_skipped_reason"] == "no broker"


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the error without a GPU")
def test_cuda_without_a_gpu_is_one_clear_line(capsys):
    assert main(["bench", "--quick", "--device", "cuda", "--no-e2e"]) == 2
    err = capsys.readouterr().err
    assert "CUDA is not available" in err and err.count("\n") == 1


@pytest.mark.slow
@pytest.mark.kafka
@pytest.mark.wallclock
def test_quick_bench_prints_every_figure(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "monitor", "--log-level", "warning", "bench", "--quick",
                           "--format", "json", "--out", str(tmp_path)],
                          capture_output=True, text=True, timeout=290)
    assert proc.returncode == 0, proc.stderr[-2000:]
    report = json.loads(proc.stdout)
    missing = [k for k in REQUIRED_KEYS if k not in report]
    assert not missing, missing
    for key in ("dcase_way_rtf", "compute_rtf", "ceiling_streams", "cold_start_s"):
        assert report[key] > 0, key
    # a crash of the Kafka part is a failure; only "no step kept up" (a loaded machine) is not
    assert not report.get("e2e_failed"), report["e2e_skipped_reason"]
    if report["e2e_streams"] is None:
        assert report["e2e_skipped_reason"].startswith("no step kept up"), report["e2e_skipped_reason"]
    else:
        assert report["e2e_streams"] > 0 and report["p99_latency_ms"] > 0 and report["rss_mb_per_1000"] > 0
    assert report["scores"]["max_rel_diff_fast_vs_plain"] <= 1e-5
    assert not report["cold_start"]["librosa_imported"]
    assert (tmp_path / "bench.json").is_file() and (tmp_path / "bench.png").is_file()
    assert "compute part" in table(report)


def _fake_step(tmp_path, *, delays, streams=2, seconds=10.0, hop=0.5, sr=16000, lateness=0.0,
               transit=0.05):
    """A worker record as ``e2e_worker`` writes it: windows ending every hop, scored after
    ``delays``; 100 ms chunks arriving ``transit`` s after their capture end."""
    import numpy as np

    from monitor.bench.e2e import Harness

    start = 1_700_000_000.0
    ends, scored, wstream, cstream, cend, carrival = [], [], [], [], [], []
    k0 = int(np.ceil(start / hop))
    n = int(seconds / hop)
    for s in range(streams):
        for i in range(n):
            end_t = (k0 + i) * hop
            ends.append(round(end_t * sr))
            scored.append(end_t + delays(i / n))
            wstream.append(s)
        for j in range(1, int(seconds / 0.1) + 1):
            cstream.append(s)
            cend.append(round(start * sr) + j * sr // 10)
            carrival.append(start + j * 0.1 + transit)
    np.savez(tmp_path / "windows.npz", end_sample=np.array(ends, dtype=np.int64),
             scored_at=np.array(scored), arrival_to_scored=np.full(10, 0.05),
             window_stream=np.array(wstream), chunk_stream=np.array(cstream),
             chunk_end=np.array(cend, dtype=np.int64), chunk_arrival=np.array(carrival))
    (tmp_path / "result.json").write_text(json.dumps({"rc": 0, "marks": {}, "sample_rate": sr, "hop_s": hop,
                                                      "length_s": 1.0}))
    prod = {"start_ns": int(start * 1e9), "lateness_max_s": lateness}
    h = Harness.__new__(Harness)
    return h._analyse(tmp_path, streams, seconds, prod, [])


def test_e2e_analysis_latency_and_keep_up(tmp_path):
    ok = _fake_step(tmp_path, delays=lambda f: 0.1)
    # chunks of the last hop wait 0..400 ms for their window, plus the 100 ms window delay;
    # from their arrival (50 ms after capture) 50 ms less
    assert ok["kept_up"] and abs(ok["capture_p50_ms"] - 300) < 1 and abs(ok["capture_p99_ms"] - 500) < 1
    assert abs(ok["p50_ms"] - 250) < 1 and abs(ok["p99_ms"] - 450) < 1
    assert abs(ok["window_delay_p99_ms"] - 100) < 1e-2 and ok["windows_scored"] == ok["windows_expected"]
    behind = _fake_step(tmp_path, delays=lambda f: 0.1 + 2.0 * f)  # falling behind
    assert not behind["kept_up"] and "delay grew" in behind["reason"]
    waiting_in_broker = _fake_step(tmp_path, delays=lambda f: 0.35, transit=0.3)  # arrival p99 450
    assert not waiting_in_broker["kept_up"] and "from capture" in waiting_in_broker["reason"]
    slow_producer = _fake_step(tmp_path, delays=lambda f: 0.1, lateness=1.0)
    assert not slow_producer["kept_up"] and "producer" in slow_producer["reason"]


def test_rss_per_1000_streams_is_read_at_1000_not_scaled_from_another_step():
    from monitor.bench.e2e import _rss_line, _rss_per_1000

    steps = [{"streams": 300, "worker_rss_mb": 325.0}, {"streams": 1200, "worker_rss_mb": 550.0}]
    # 250 MB fixed + 0.25 MB per stream: 500 MB at 1,000 (scaling the 1,200 step said 458)
    assert _rss_line(steps) == pytest.approx((250.0, 0.25))
    assert _rss_per_1000(steps) == pytest.approx(500.0)
    assert _rss_per_1000(steps + [{"streams": 1000, "worker_rss_mb": 512.0}]) == 512.0  # measured wins
    assert _rss_per_1000(steps[:1]) == 325.0 and _rss_per_1000([]) is None


def test_scorer_sweep_takes_turns_and_measures_the_reference_alike(tmp_path):
    """The sweep times every scorer once per round (so load changes move them alike) and
    measures the headline model's scorer the same way, first, as the reference."""
    import torch

    from monitor.bench.suite import BenchOptions, other_scorers
    from monitor.bench.workload import make_clips, train_bench_model
    from workers.model import load_model

    clips = make_clips(tmp_path / "clips", n=2, seconds=10.0)
    reference = load_model(train_bench_model(tmp_path / "ref", epochs=1), device="cpu")
    opts = BenchOptions(quick=True, scorers=["stats-maha"], rounds=2, min_seconds=0.1)
    rows = other_scorers(tmp_path, clips, opts, skip="ae", device=torch.device("cpu"), threads=1,
                         reference=reference)
    assert [r["scorer"] for r in rows] == ["ae", "stats-maha"]
    assert rows[0]["reference"] and "reference" not in rows[1]
    for r in rows:
        assert len(r["rtf_rounds"]) == 2 and r["rtf_per_core"] == r["rtf_median"] > 0
        assert r["clips_per_batch"] == 2 and 0 < r["features_share"] < 1
