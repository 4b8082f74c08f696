"""Cross-stream micro-batching: when to run the scorer on everything queued.

Chunks of many streams are queued (framed) as they arrive; one scoring call then runs the
front end and the scorer over all of them. A batch is due when ``max_batch`` items (scorer
vectors, about one per feature frame) are queued, or when the oldest queued item has waited
``max_wait_ms``: large batches under load, bounded latency when traffic is light.
"""
from __future__ import annotations

import time
from collections.abc import Callable


class MicroBatcher:
    def __init__(self, *, max_batch: int, max_wait_ms: float,
                 clock: Callable[[], float] = time.monotonic) -> None:
        if max_batch < 1 or max_wait_ms < 0:
            raise ValueError(f"need max_batch >= 1 and max_wait_ms >= 0, got {max_batch}, {max_wait_ms}")
        self.max_batch, self.max_wait = max_batch, max_wait_ms / 1000.0
        self.clock = clock
        self.pending = 0
        self.first_at: float | None = None

    def add(self, items: int, *, now: float | None = None) -> None:
        if self.first_at is None:
            self.first_at = self.clock() if now is None else now
        self.pending += items

    def due(self, *, now: float | None = None) -> bool:
        if self.first_at is None:
            return False
        if self.pending >= self.max_batch:
            return True
        return (self.clock() if now is None else now) - self.first_at >= self.max_wait

    def time_left(self, *, now: float | None = None) -> float | None:
        """Seconds until the queued items are due by age (None: nothing queued)."""
        if self.first_at is None:
            return None
        return max(0.0, self.first_at + self.max_wait - (self.clock() if now is None else now))

    def reset(self) -> None:
        self.pending, self.first_at = 0, None
