"""The commit rule: a partition commits the oldest offset a restart needs, never past it."""
from __future__ import annotations

import numpy as np

from models.threshold import Threshold
from monitor.alerting import AlertContext, HysteresisSpec, StreamAlerts
from monitor.service.checkpoint import OffsetBook
from workers.windowing import WindowScore


def test_offsets_follow_the_oldest_needed_chunk():
    book = OffsetBook()
    tp, other = ("audio", 0), ("audio", 1)
    for i in range(5):  # stream a: chunks of 1000 samples at offsets 0, 2, 4, 6, 8
        book.chunk("a", tp, 2 * i, 1000 * i, anchor=0 if i == 0 else None)
        book.chunk("b", tp, 2 * i + 1, 500 * i, anchor=1 if i == 0 else None)
    book.seen(other, 41)
    resume = {"a": None, "b": None}
    assert book.offsets(resume.get) == {tp: 0, other: 42}  # nothing quiet yet: anchors hold
    resume["a"], resume["b"] = 2500, 1200
    assert book.offsets(resume.get)[tp] == 4  # a needs its chunk at 2000 (offset 4); b at 1000 (offset 5)
    book.mark_committed({tp: 4, other: 42})
    assert book.offsets(resume.get) == {}  # unchanged offsets are not re-committed
    book.release("a")
    book.release("b")
    assert book.offsets(resume.get) == {tp: 10}
    assert book.drop_partitions([tp]) == [] and tp not in book.last


def test_gap_anchor_keeps_the_chunk_before_the_gap():
    book = OffsetBook()
    tp = ("audio", 0)
    book.chunk("a", tp, 0, 0, anchor=0)
    book.chunk("a", tp, 1, 1600)
    book.chunk("a", tp, 5, 99_000, anchor=1)  # gap: history restarts, a restart must see offset 1
    assert book.offsets(lambda s: None) == {tp: 1}


def _windows(scores):
    return [WindowScore("s", k, 8000 * k, 8000 * k + 16000, float(v), 10) for k, v in enumerate(scores)]


def _run(alerts, windows):
    out = []
    for w in windows:
        out += [(w.index, e["event_id"], e["status"]) for e in alerts.update(w)]
    return out


def test_a_restart_anywhere_reproduces_every_event_after_its_first_quiet_point():
    """The alerting half of the delivery rule, on random scores and every restart point."""
    rng = np.random.default_rng(0)
    thr = Threshold(value=1.0, params={"a": 2.0, "loc": 0.0, "scale": 0.3})
    spec = HysteresisSpec(2, 3, 3)
    scores = np.where(rng.random(400) < 0.3, 1.5, 0.5) * rng.uniform(0.8, 1.2, 400)
    windows = _windows(scores)
    ctx = AlertContext(stream="s", scorer="ae", model_version="v1", sample_rate=16000)
    full = _run(StreamAlerts(ctx, thr, spec), windows)
    assert len(full) > 20
    q = max(spec.n, spec.m)
    for r in range(0, 380, 7):
        restart = StreamAlerts(ctx, thr, spec)
        restart.armed = False
        got = _run(restart, windows[r:])
        # the first quiet point at or after r + q - 1: q windows in a row under the threshold
        over = scores > 1.0
        a = next(j for j in range(r + q - 1, len(scores)) if not over[j - q + 1:j + 1].any())
        assert got == [e for e in full if e[0] > a], r
