"""Process tuning: the C-heap setting a worker applies (in a child process: it is process-wide)."""
from __future__ import annotations

import json
import platform
import statistics
import subprocess
import sys

import pytest

from monitor.process_tuning import keep_heap

CHILD = """
import json, resource, sys
import torch
from monitor.process_tuning import keep_heap
applied = keep_heap(int(sys.argv[1]))
faults = []
for i in range(6):  # a flush's frames, spectra, vectors: megabytes each, a little more each flush
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for mb in (4 + i, 8 + 2 * i, 12 + 3 * i):
        a = torch.empty(mb * 1024 * 1024 // 4).fill_(1.0)
        del a
    faults.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
print(json.dumps({"applied": applied, "faults": faults}))
"""


def _child(keep_mb: int) -> dict:
    out = subprocess.run([sys.executable, "-c", CHILD, str(keep_mb)], capture_output=True, text=True,
                         check=True, timeout=120)
    return json.loads(out.stdout.strip().splitlines()[-1])


def _median_child(keep_mb: int, runs: int = 5) -> dict:
    """Per-flush median over ``runs`` children: glibc's adaptive mmap threshold and where the
    heap lies (address randomisation) make one child's flush counts vary between runs (the
    default's sixth flush read 7,425, 11,521 or 2,816 faults in runs of the same code)."""
    children = [_child(keep_mb) for _ in range(runs)]
    return {"applied": children[0]["applied"],
            "faults": [int(statistics.median(c["faults"][i] for c in children))
                       for i in range(len(children[0]["faults"]))]}


def test_zero_keeps_the_c_library_defaults():
    assert keep_heap(0) is False


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="mallopt is glibc's")
def test_kept_heap_serves_growing_flush_arrays_with_fewer_page_faults():
    default, kept = _median_child(0), _median_child(64)
    assert default["applied"] is False and kept["applied"] is True
    # by default every array above glibc's adaptive threshold is mapped afresh and faulted in
    # page by page; kept, a later flush reuses the pages of the one before and faults in only
    # what it needs beyond them
    assert sum(kept["faults"][1:]) < 0.5 * sum(default["faults"][1:]), (default, kept)
    assert kept["faults"][-1] < 0.25 * default["faults"][-1], (default, kept)
