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
from monitor.bench.suite import REQUIRED_KEYS, e2e_skipped, rel_diff
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
    if report["e2e_streams"] is None:
        assert report["e2e_skipped_reason"]
    else:
        assert report["e2e_streams"] > 0 and report["p99_latency_ms"] > 0 and report["rss_mb_per_1000"] > 0
    assert report["scores"]["max_rel_diff_fast_vs_plain"] <= 1e-5
    assert not report["cold_start"]["librosa_imported"]
    assert (tmp_path / "bench.json").is_file() and (tmp_path / "bench.png").is_file()
    assert "compute part" in table(report)
