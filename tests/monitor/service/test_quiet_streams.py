"""Which streams count as quiet: only time spent caught up with the partitions counts."""
from __future__ import annotations

from monitor.service.quiet import QuietStreams


def test_quiet_after_idle_s_while_caught_up():
    q = QuietStreams(3.0)
    q.polled(0.0, records=5, full_at=100)
    q.heard("a", 0.0)
    q.heard("b", 1.0)
    q.heard("a", 2.0)  # a spoke again: b is now the oldest
    for t in (1.0, 2.0, 3.0, 3.9):
        q.polled(t, records=0, full_at=100)
    assert q.quiet(3.9) == []
    q.polled(4.1, records=0, full_at=100)
    assert q.quiet(4.1) == [("b", None)]
    q.forget("b")
    q.polled(5.1, records=0, full_at=100)
    assert q.quiet(5.1) == [("a", None)] and len(q) == 1


def test_a_backlog_or_a_stall_restarts_every_clock():
    q = QuietStreams(4.0)
    q.heard("a", 0.0, info=7)
    q.polled(0.5, records=100, full_at=100)  # a full poll: messages are waiting
    q.polled(10.0, records=3, full_at=100)  # 9.5 s without a poll (> idle_s / 2): a stall
    for t in (11.0, 12.0, 13.0, 14.0, 14.9):
        q.polled(t, records=0, full_at=100)
    assert q.quiet(14.9) == []  # caught up only since 11.0 (the first poll after the stall)
    q.polled(15.1, records=0, full_at=100)
    assert q.quiet(15.1) == [("a", 7)]


def test_zero_never_finishes():
    q = QuietStreams(0.0)
    q.heard("a", 0.0)
    q.polled(1e6, records=0, full_at=10)
    assert q.quiet(1e6) == []
