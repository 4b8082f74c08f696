"""Repeated log lines become a counter and a periodic summary.

Kafka clients repeat themselves while a broker is away (librdkafka logged 352 ``FAIL`` lines in
18 s); a stream without a model would warn once per stream id (5,000 ids, 5,000 lines). Both
drown the one line that matters. ``RepeatLimiter`` is a handler filter for the clients' loggers:
the first line of a kind passes, its repeats within ``interval_s`` are counted, and the next one
after that passes with ``repeats`` (how many were held back) and the held-back count is also
said on its own if the kind stops recurring. ``SituationCounter`` does the same for one
situation with many subjects (stream ids) and keeps a bounded sample of them, so its memory
does not grow with the number of distinct subjects.
"""
from __future__ import annotations

import logging
import re
import time
from collections import OrderedDict

#: loggers whose lines are limited: kafka-python's and librdkafka's (routed to this name)
CLIENT_LOGGERS = ("kafka", "monitor.librdkafka")
LIBRDKAFKA_LOGGER = "monitor.librdkafka"
_DIGITS = re.compile(r"\d+")


def _is_client(name: str) -> bool:
    return any(name == n or name.startswith(n + ".") for n in CLIENT_LOGGERS)


class RepeatLimiter(logging.Filter):
    """Pass the first record of a kind per ``interval_s``; count the rest (see module doc)."""

    def __init__(self, *, interval_s: float = 60.0, max_kinds: int = 1000, clock=time.monotonic) -> None:
        super().__init__()
        self.interval_s, self.max_kinds, self.clock = interval_s, max_kinds, clock
        #: kind -> [window start, held back, example message, logger name, level]
        self.kinds: OrderedDict[tuple, list] = OrderedDict()

    def filter(self, record: logging.LogRecord) -> bool:
        if not _is_client(record.name):
            return True
        now = self.clock()
        text = record.getMessage()
        kind = (record.name, record.levelno, _DIGITS.sub("#", text)[:300])
        self._summarise_quiet(now, kind)
        state = self.kinds.get(kind)
        if state is None:
            self.kinds[kind] = [now, 0, text, record.name, record.levelno]
            while len(self.kinds) > self.max_kinds:
                self.kinds.popitem(last=False)
            return True
        if now - state[0] < self.interval_s:
            state[1] += 1
            return False
        if state[1]:
            record.repeats = state[1]
            record.msg, record.args = f"{text} (and {state[1]} more like it in the last " \
                                      f"{now - state[0]:.0f} s)", None
        state[0], state[1] = now, 0
        self.kinds.move_to_end(kind)
        return True

    def _summarise_quiet(self, now: float, current: tuple) -> None:
        """Say the held-back count of kinds that stopped recurring (one line each)."""
        for kind, state in list(self.kinds.items()):
            if kind != current and state[1] and now - state[0] >= self.interval_s:
                held, state[1], state[0] = state[1], 0, now
                logging.getLogger(state[3]).handle(logging.LogRecord(
                    state[3], state[4], __file__, 0,
                    "%d more like %r in the last %.0f s", (held, state[2][:200], self.interval_s), None))


def install(handler: logging.Handler, *, interval_s: float = 60.0) -> RepeatLimiter:
    limiter = RepeatLimiter(interval_s=interval_s)
    handler.addFilter(limiter)
    return limiter


class SituationCounter:
    """One situation (e.g. "no model for this stream"), many subjects: the first ``first``
    subjects are logged one by one, later ones are counted and summarised every
    ``interval_s`` with a few examples. Remembers at most ``memory`` subjects (oldest forgotten)."""

    def __init__(self, logger: logging.Logger, what: str, *, first: int = 10, interval_s: float = 60.0,
                 memory: int = 10000, clock=time.monotonic) -> None:
        self.log, self.what, self.first = logger, what, first
        self.interval_s, self.memory, self.clock = interval_s, memory, clock
        self.seen: OrderedDict[str, None] = OrderedDict()
        self.told = 0
        self.pending: list[str] = []
        self.pending_count = 0
        self.total = 0
        self.since = clock()

    def hit(self, subject: str, **extra) -> None:
        self.total += 1
        if subject in self.seen:
            self.seen.move_to_end(subject)
        else:
            self.seen[subject] = None
            if len(self.seen) > self.memory:
                self.seen.popitem(last=False)
            if self.told < self.first:
                self.told += 1
                self.log.warning("%s: %s", self.what, subject, extra=extra)
            else:
                self.pending_count += 1
                if len(self.pending) < 5:
                    self.pending.append(subject)
        self.tick()

    def forget(self, subject: str) -> None:
        """Drop a subject that is gone (a stream finished): memory follows the live ones."""
        self.seen.pop(subject, None)

    def tick(self) -> None:
        now = self.clock()
        if self.pending_count and now - self.since >= self.interval_s:
            self.log.warning("%s: %d more subjects in the last %.0f s (e.g. %s)", self.what,
                             self.pending_count, now - self.since, ", ".join(self.pending),
                             extra={"count": self.pending_count, "total_messages": self.total})
            self.pending, self.pending_count = [], 0
        if now - self.since >= self.interval_s:
            self.since = now
