"""Process tuning: the C-heap setting a worker applies (in a child process: it is process-wide)."""
from __future__ import annotations

import json
import platform
import subprocess
import sys

import pytest

from monitor.service.process_tuning import keep_heap

#: A flush's frames, spectra and vectors (megabytes each, a little larger each flush), allocated
#: with the C library's malloc itself, as torch's CPU allocator does. Going through torch let the
#: interpreter's and torch's small allocations land between the big ones at random (address
#: randomisation), so a child's page-fault counts varied from run to run; through malloc directly
#: they are the same on every run.
CHILD = """
import ctypes, ctypes.util, json, resource, sys
from monitor.service.process_tuning import keep_heap
libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
libc.malloc.restype = ctypes.c_void_p
libc.malloc.argtypes = [ctypes.c_size_t]
libc.free.argtypes = [ctypes.c_void_p]
applied = keep_heap(int(sys.argv[1]))
faults = []
for i in range(6):
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for mb in (4 + i, 8 + 2 * i, 12 + 3 * i):
        n = mb * 1024 * 1024
        p = libc.malloc(n)
        ctypes.memset(p, 1, n)
        libc.free(p)
    faults.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
print(json.dumps({"applied": applied, "faults": faults}))
"""
PAGE = 4096
#: What the largest array grows by from one flush to the next (3 MB), in pages.
GROWTH_PAGES = 3 * 1024 * 1024 // PAGE


def _child(keep_mb: int) -> dict:
    out = subprocess.run([sys.executable, "-c", CHILD, str(keep_mb)], capture_output=True, text=True,
                         check=True, timeout=120)
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_zero_keeps_the_c_library_defaults():
    assert keep_heap(0) is False


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="mallopt is glibc's")
def test_kept_heap_serves_growing_flush_arrays_with_fewer_page_faults():
    default, kept = _child(0), _child(64)
    assert default["applied"] is False and kept["applied"] is True
    later_default, later_kept = default["faults"][1:], kept["faults"][1:]
    # kept, a later flush reuses the pages of the one before and faults in only what its
    # largest array needs beyond them (plus a page or two of bookkeeping)
    assert max(later_kept) <= 2 * GROWTH_PAGES, (default, kept)
    # by default the array above glibc's adaptive mmap threshold is mapped afresh each flush and
    # faulted in page by page: at least the 15 MB of the second flush's largest array
    assert min(later_default) >= 15 * 1024 * 1024 // PAGE, (default, kept)
    assert sum(later_kept) < 0.25 * sum(later_default), (default, kept)
