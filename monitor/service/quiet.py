"""Streams that stopped without ``eos``: which ones have been quiet long enough to finish.

A machine switched off or a crashed producer never sends ``eos``; without an idle bound its
state lives forever and its oldest needed offset holds the partition's commit back (a restart
would re-read everything since). ``service.stream_idle_s`` bounds that.

Quiet is measured on the worker's clock from the stream's last message, but only while the
worker keeps up with its partitions: a poll that returns a full batch means messages are
waiting (a backlog after a stall or a restart), and a stream's next chunk may be among them,
so the clock of every stream starts again from the first poll that is not full. A loop that did
not poll for half the idle bound (a long scoring call) counts as a backlog too. So a worker that
falls behind never finishes a live stream; it finishes a quiet one ``stream_idle_s`` after it
caught up.

Keys are the worker's stream keys (the stream id for audio, ``sensor:<id>`` for sensors); the
map is ordered by last message, so finding the quiet ones reads only those.
"""
from __future__ import annotations

from collections import OrderedDict
from typing import Any


class QuietStreams:
    def __init__(self, idle_s: float) -> None:
        self.idle_s = idle_s
        self.last: OrderedDict[str, tuple[float, Any]] = OrderedDict()  # key -> (time, info), oldest first
        self.caught_up_since: float | None = None
        self._last_poll: float | None = None

    def heard(self, key: str, now: float, info: Any = None) -> None:
        """A message of ``key`` arrived at ``now`` (``info``: kept for whoever finishes it)."""
        self.last[key] = (now, info)
        self.last.move_to_end(key)

    def forget(self, key: str) -> None:
        self.last.pop(key, None)

    def polled(self, now: float, *, records: int, full_at: int) -> None:
        """After each poll: ``records`` returned, ``full_at`` = the most one poll returns."""
        stalled = self._last_poll is not None and now - self._last_poll > self.idle_s / 2
        self._last_poll = now
        if records >= full_at or stalled:
            self.caught_up_since = None
        elif self.caught_up_since is None:
            self.caught_up_since = now

    def quiet(self, now: float) -> list[tuple[str, Any]]:
        """(key, info) of the streams quiet for ``idle_s`` while caught up (oldest first)."""
        if self.idle_s <= 0 or self.caught_up_since is None:
            return []
        horizon = now - self.idle_s
        if self.caught_up_since > horizon:
            return []
        out = []
        for key, (t, info) in self.last.items():
            if t > horizon:
                break
            out.append((key, info))
        return out

    def __len__(self) -> int:
        return len(self.last)
