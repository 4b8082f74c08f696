"""Which offset each partition may commit (DESIGN §4.4, at-least-once).

For every stream the book keeps the offsets (and seqs) of its chunks since the oldest sample a
restart still needs. That sample comes from the runtime: with checkpointed state
(``takeover.py``) it is where the stream's unfinished window starts
(``StreamRunner.restore_point``), the rest being in the state topic; without, it is the start
of the last run of windows after which the alert state no longer depends on earlier audio
(``StreamRunner.resume_sample``). When there is none yet, it is the stream's *anchor* - the
message where this worker's history of the stream begins (its first message here, or the last
one before a gap, so a restart sees the gap again). A partition commits the minimum over its
streams, or one past its last consumed message when no stream holds anything.
"""
from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass
class _Stream:
    tp: object
    anchor: int
    chunks: deque = field(default_factory=deque)  # (start_sample, offset, seq), oldest first


class OffsetBook:
    def __init__(self) -> None:
        self.last: dict[object, int] = {}        # tp -> last consumed offset
        self.streams: dict[str, _Stream] = {}
        self.committed: dict[object, int] = {}

    def seen(self, tp, offset: int) -> None:
        if offset > self.last.get(tp, -1):
            self.last[tp] = offset

    def chunk(self, stream: str, tp, offset: int, start_sample: int, *, anchor: int | None = None,
              seq: int = 0) -> None:
        """Record a chunk; ``anchor`` (an offset) starts a new history for the stream."""
        self.seen(tp, offset)
        st = self.streams.get(stream)
        if st is None or anchor is not None:
            st = self.streams[stream] = _Stream(tp, offset if anchor is None else anchor)
        st.tp = tp
        st.chunks.append((start_sample, offset, seq))

    def release(self, stream: str) -> None:
        """The stream ended: it holds nothing back any more."""
        self.streams.pop(stream, None)

    def needed(self, stream: str, resume_sample: int | None) -> int:
        st = self.streams[stream]
        if resume_sample is None:
            return st.anchor
        first = self._first_needed(st, resume_sample)
        return first[1] if first is not None else st.anchor

    def resume_chunk(self, stream: str, sample: int) -> tuple[int, int, int] | None:
        """(offset, seq, start sample) of the chunk holding ``sample`` (or the last one before
        it), None when the stream has no chunk that old here."""
        st = self.streams.get(stream)
        first = None if st is None else self._first_needed(st, sample)
        return None if first is None else (first[1], first[2], first[0])

    @staticmethod
    def _first_needed(st: _Stream, sample: int) -> tuple | None:
        chunks = st.chunks
        while len(chunks) > 1 and chunks[1][0] <= sample:
            chunks.popleft()
        return chunks[0] if chunks and chunks[0][0] <= sample else None

    def offsets(self, resume: Callable[[str], int | None], tps=None) -> dict[object, int]:
        """Offsets to commit now (only those that changed), per partition in ``tps`` (or all)."""
        want = {tp: off + 1 for tp, off in self.last.items() if tps is None or tp in tps}
        for name, st in self.streams.items():
            if st.tp in want:
                want[st.tp] = min(want[st.tp], self.needed(name, resume(name)))
        return {tp: off for tp, off in want.items() if self.committed.get(tp) != off}

    def mark_committed(self, offsets: dict) -> None:
        self.committed.update(offsets)

    def drop_partitions(self, tps) -> list[str]:
        """Forget revoked partitions; returns the streams that lived on them."""
        tps = set(tps)
        gone = [s for s, st in self.streams.items() if st.tp in tps]
        for s in gone:
            del self.streams[s]
        for tp in tps:
            self.last.pop(tp, None)
            self.committed.pop(tp, None)
        return gone
