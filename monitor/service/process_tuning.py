"""Process-wide settings a long-running worker applies once it is up: garbage collection and
the C heap. Both trade a little retained memory for less work per flush."""
from __future__ import annotations

import ctypes
import ctypes.util
import logging

log = logging.getLogger(__name__)

#: glibc ``mallopt`` parameters (malloc.h).
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3
#: glibc refuses an mmap threshold above HEAP_MAX_SIZE / 2 (32 MB on 64-bit).
_MMAP_THRESHOLD_MAX = 32 * 1024 * 1024


def tune_gc(gen0_threshold: int) -> None:
    """Freeze what is alive after start-up (models, torch, the client) so that collections do
    not walk it again, and collect the young generation less often: the scoring loop allocates
    many short-lived objects per message, none of them in cycles that matter for memory."""
    import gc  # noqa: PLC0415

    gc.collect()
    gc.freeze()
    if gen0_threshold:
        _, gen1, gen2 = gc.get_threshold()
        gc.set_threshold(gen0_threshold, gen1, gen2)


def keep_heap(keep_mb: int) -> bool:
    """Let glibc serve the per-flush arrays (frames, spectra, vectors: megabytes each, freed
    within the flush) from its heap and keep up to ``keep_mb`` of freed memory, instead of
    mapping fresh pages for each array and returning them at once.

    Why: by default glibc maps every allocation over its (adaptive) mmap threshold with mmap
    and unmaps it on free, so each flush touches its arrays' pages anew; the first touch of
    each 4 kB page is a page fault (~40,000 per 80 stream-seconds in the compute part, ~7 %
    of its time). Returns False where the C library is not glibc or refuses (nothing changes).
    """
    if keep_mb <= 0:
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    keep = keep_mb * 1024 * 1024
    ok = mallopt(_M_MMAP_THRESHOLD, min(keep, _MMAP_THRESHOLD_MAX)) == 1
    ok = ok and mallopt(_M_TRIM_THRESHOLD, keep) == 1
    if not ok:
        log.info("the C library refused the heap settings; kept its defaults")
    return ok


def release_heap() -> bool:
    """Hand freed C-heap memory back to the system (glibc ``malloc_trim``), after many streams
    ended at once: their buffers are freed, but spread over the heap they stay resident (the
    trim threshold only returns memory at the heap's top). False where that is not glibc."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        return bool(libc.malloc_trim(0))
    except (OSError, AttributeError):
        return False
