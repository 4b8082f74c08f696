"""Micro-batching: due at max_batch items or when the oldest item has waited max_wait_ms."""
from __future__ import annotations

import pytest

from workers.batching import MicroBatcher


def test_due_by_size_or_age():
    now = [0.0]
    b = MicroBatcher(max_batch=100, max_wait_ms=50, clock=lambda: now[0])
    assert not b.due() and b.time_left() is None
    b.add(60)
    now[0] = 0.01
    b.add(30)
    assert not b.due() and b.time_left() == pytest.approx(0.04)
    b.add(10)
    assert b.due()
    b.reset()
    b.add(1)
    now[0] = 0.059
    assert not b.due()
    now[0] = 0.061
    assert b.due() and b.time_left() == 0.0


def test_rejects_nonsense():
    with pytest.raises(ValueError):
        MicroBatcher(max_batch=0, max_wait_ms=10)
