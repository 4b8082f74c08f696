"""Repeated client log lines become a counter and a summary; one situation, many subjects,
bounded memory. Why: librdkafka logged 352 FAIL lines in 18 s with the broker down, and a
warning per unknown stream key gave 5,000 lines for 5,000 keys while its lookup set grew."""
from __future__ import annotations

import json
import logging

from monitor.log_limits import LIBRDKAFKA_LOGGER, RepeatLimiter, SituationCounter
from monitor.logs import JsonFormatter


class _Clock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


def _capture(limiter: RepeatLimiter):
    lines: list[str] = []

    class H(logging.Handler):
        def emit(self, record):
            lines.append(self.format(record))

    h = H()
    h.setFormatter(JsonFormatter())
    h.addFilter(limiter)
    return h, lines


def test_librdkafka_repeats_are_counted_and_summarised_as_json():
    clock = _Clock()
    limiter = RepeatLimiter(interval_s=60, clock=clock)
    h, lines = _capture(limiter)
    lg = logging.getLogger(LIBRDKAFKA_LOGGER + ".t")
    lg.addHandler(h)
    lg.propagate = False
    try:
        for i in range(352):  # librdkafka's line, as its logger callback passes it
            clock.t = i * 18 / 352
            lg.error("%s [%s] %s", "FAIL", "rdkafka#consumer-1",
                     f"127.0.0.1:1/bootstrap: Connect to ipv4#127.0.0.1:1 failed (after {i}ms in state CONNECT)")
        assert len(lines) == 1
        clock.t = 61
        lg.error("%s [%s] %s", "FAIL", "rdkafka#consumer-1",
                 "127.0.0.1:1/bootstrap: Connect to ipv4#127.0.0.1:1 failed (after 0ms in state CONNECT)")
        assert len(lines) == 2
        last = json.loads(lines[-1])
        assert last["repeats"] == 351 and "351 more like it" in last["msg"]
        lg.warning("another situation")
        assert len(lines) == 3
    finally:
        lg.removeHandler(h)


def test_a_kind_that_stops_gets_its_count_said_once():
    clock = _Clock()
    limiter = RepeatLimiter(interval_s=10, clock=clock)
    h, lines = _capture(limiter)
    lg = logging.getLogger("kafka.t")
    lg.addHandler(h)
    lg.propagate = False
    try:
        for _ in range(5):
            lg.warning("node 1 disconnected")
        clock.t = 11
        lg.warning("something else")
        msgs = [json.loads(x)["msg"] for x in lines]
        assert msgs[0] == "node 1 disconnected" and "4 more like" in msgs[1] and msgs[2] == "something else"
    finally:
        lg.removeHandler(h)


def test_product_lines_are_never_limited():
    limiter = RepeatLimiter(interval_s=60)
    rec = logging.LogRecord("monitor.service", logging.WARNING, __file__, 0, "same", None, None)
    assert all(limiter.filter(rec) for _ in range(10))


def test_unknown_streams_become_a_summary_and_memory_is_bounded(caplog):
    clock = _Clock()
    counter = SituationCounter(logging.getLogger("monitor.t"), "no model for stream", first=10,
                               interval_s=60, memory=100, clock=clock)
    with caplog.at_level(logging.WARNING, logger="monitor.t"):
        for i in range(5000):
            clock.t = i * 0.01  # 50 s
            counter.hit(f"line9/unknown-{i:04d}")
        clock.t = 61
        counter.hit("line9/unknown-0000")
    records = [r for r in caplog.records if r.name == "monitor.t"]
    assert len(records) == 11
    # 4,990 after the first ten, plus unknown-0000 again: with 100 remembered it was forgotten
    assert "4991 more subjects" in records[-1].getMessage() and records[-1].count == 4991
    assert len(counter.seen) == 100
