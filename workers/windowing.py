"""Per-stream state that cuts a stream into frames, vectors and alerting windows.

Positions are absolute sample indices on a grid anchored at sample 0 of the stream's clock:
frame ``f`` starts at ``f * hop``, vector ``v`` holds frames ``v*h .. v*h + T - 1`` and alerting
window ``k`` covers samples ``[k*H, k*H + W)``. A stream that starts (or restarts after a crash
or a gap) mid-grid skips ahead to the next grid point, so the same audio always yields the same
frames, vectors and windows however it was chunked or resumed.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch


def ceil_div(a: int, b: int) -> int:
    return -(-a // b)


class SampleFramer:
    """Raw samples in any chunk sizes -> whole frames ``[n, frame_len]`` on the hop grid."""

    def __init__(self, *, frame_len: int, hop: int, start_sample: int = 0, channels: int = 1) -> None:
        self.frame_len, self.hop = frame_len, hop
        self.next_frame = ceil_div(start_sample, hop)
        self._skip = self.next_frame * hop - start_sample  # samples to drop to reach the grid
        self.buf = np.zeros((0,) if channels == 1 else (0, channels), dtype=np.float32)
        self.end_sample = start_sample  # one past the last sample received

    def push(self, samples: np.ndarray, *, copy: bool = True) -> tuple[int, np.ndarray]:
        """Add samples; return (index of the first new frame, new frames ``[n, frame_len, ...]``).

        ``copy=False`` returns a read-only view of the frames (the hot path copies them once,
        into the batch of all streams); the view stays valid, the buffer is never written.
        """
        samples = np.asarray(samples, dtype=np.float32)
        if self.buf.ndim == 1 and samples.ndim == 2 and samples.shape[1] == 1:
            samples = samples[:, 0]  # one-channel sensor rows [n, 1] are mono samples
        self.end_sample += len(samples)
        if self._skip:
            drop = min(self._skip, len(samples))
            samples, self._skip = samples[drop:], self._skip - drop
        buf = np.concatenate([self.buf, samples]) if len(self.buf) else samples
        first = self.next_frame
        if len(buf) < self.frame_len:
            self.buf = buf.copy()
            return first, np.zeros((0, self.frame_len, *buf.shape[1:]), dtype=np.float32)
        n = 1 + (len(buf) - self.frame_len) // self.hop
        if buf.ndim == 1:  # mono: a strided view, cheaper than sliding_window_view per chunk
            buf = np.ascontiguousarray(buf)
            view = np.ndarray((n, self.frame_len), dtype=np.float32, buffer=buf,
                              strides=(self.hop * buf.itemsize, buf.itemsize))
            view.flags.writeable = False
        else:
            view = np.lib.stride_tricks.sliding_window_view(buf, self.frame_len, axis=0)[::self.hop][:n]
            view = view.transpose(0, 2, 1)  # (n, channels, frame_len) -> (n, frame_len, channels)
        frames = np.array(view, dtype=np.float32, order="C") if copy else view  # a writable copy
        self.buf = buf[n * self.hop:].copy()
        self.next_frame += n
        return first, frames


class VectorStacker:
    """Feature frames ``[n, F]`` -> vectors ``[V, T, F]`` of T consecutive frames, h frames apart."""

    def __init__(self, *, frames: int, hop: int = 1) -> None:
        self.T, self.h = frames, hop
        self.tail: torch.Tensor | np.ndarray | None = None
        self.tail_start = 0
        self.next_vector: int | None = None

    def push(self, first_frame: int, feats: torch.Tensor) -> tuple[int, torch.Tensor]:
        if isinstance(self.tail, np.ndarray):  # left by ``stack_many`` on the CPU
            self.tail = torch.from_numpy(self.tail).to(feats.device)
        if self.tail is not None and len(self.tail):
            if self.tail_start + len(self.tail) != first_frame:
                raise ValueError(f"frames are not contiguous: expected frame "
                                 f"{self.tail_start + len(self.tail)}, got {first_frame}")
            feats, first_frame = torch.cat([self.tail, feats]), self.tail_start
        if self.next_vector is None:
            self.next_vector = ceil_div(first_frame, self.h)
        end_frame = first_frame + len(feats)
        v0 = max(self.next_vector, ceil_div(first_frame, self.h))
        v_last = (end_frame - self.T) // self.h
        if v_last >= v0:
            start = v0 * self.h - first_frame
            span = feats[start:]
            vectors = span.unfold(0, self.T, self.h).transpose(1, 2)[: v_last - v0 + 1]
            self.next_vector = v_last + 1
        else:
            vectors = feats.new_zeros((0, self.T, feats.shape[-1]))
        keep_from = max(self.next_vector * self.h, first_frame)
        self.tail = feats[keep_from - first_frame:]
        self.tail_start = keep_from
        return v0, vectors


def stack_many(stackers: list[VectorStacker], parts: list[tuple[int, int, int]],
               feats: torch.Tensor) -> tuple[list[tuple[int, int]], torch.Tensor]:
    """``VectorStacker.push`` for many streams at once, with one gather instead of per-stream ops.

    ``parts[i] = (first_frame, row, n)``: stream i's new frames are ``feats[row:row + n]``.
    Returns ``[(first vector, vectors)]`` per stream and all vectors ``[V, T, F]``: the same
    vectors in the same order as each stacker's ``push`` followed by a concatenation, and the
    stackers end in the same state.
    """
    if not stackers:
        return [], feats.new_zeros((0, 1, feats.shape[-1]))
    T, h = stackers[0].T, stackers[0].h
    # On the CPU the slicing and the gather run in numpy (a slice costs ~0.2 us there against
    # ~1.5 us for a torch view, three per stream per flush); tails are then numpy arrays.
    on_cpu = feats.device.type == "cpu"
    src = feats.numpy() if on_cpu else feats
    pieces, segs, off = [], [], 0
    for st, (first, row, n) in zip(stackers, parts):
        if st.T != T or st.h != h:
            raise ValueError("stack_many needs stackers of one shape")
        f0 = first
        k = 0 if st.tail is None else st.tail.shape[0]
        if k:
            if st.tail_start + k != first:
                raise ValueError(f"frames are not contiguous: expected frame "
                                 f"{st.tail_start + k}, got {first}")
            pieces.append(_as(st.tail, on_cpu))
            f0 = st.tail_start
        pieces.append(src[row:row + n])
        segs.append((off, f0, k + n))
        off += k + n
    if len(pieces) == 1:
        ext = pieces[0]
    else:
        ext = np.concatenate(pieces) if on_cpu else torch.cat(pieces)
    out, starts, counts = [], [], []
    for st, (s0, f0, length) in zip(stackers, segs):
        if st.next_vector is None:
            st.next_vector = ceil_div(f0, h)
        v0 = max(st.next_vector, ceil_div(f0, h))
        v_last = (f0 + length - T) // h
        nv = v_last - v0 + 1 if v_last >= v0 else 0
        if nv:
            starts.append(s0 + v0 * h - f0)
            counts.append(nv)
            st.next_vector = v_last + 1
        keep_from = max(st.next_vector * h, f0)
        st.tail = ext[s0 + keep_from - f0:s0 + length]
        st.tail_start = keep_from
        out.append((v0, nv))
    if not counts:
        return out, feats.new_zeros((0, T, feats.shape[-1]))
    c = np.asarray(counts)
    rows = np.repeat(np.asarray(starts) - (np.cumsum(c) - c) * h, c) + np.arange(int(c.sum())) * h
    idx = rows[:, None] + np.arange(T)[None, :]
    if on_cpu:
        return out, torch.from_numpy(ext[idx])
    return out, ext[torch.from_numpy(idx).to(ext.device)]


def _as(tail, numpy: bool):
    """A stacker's tail as a numpy array (CPU batches) or a torch tensor."""
    if numpy:
        return tail.numpy() if isinstance(tail, torch.Tensor) else tail
    return tail if isinstance(tail, torch.Tensor) else torch.from_numpy(tail)


@dataclass
class WindowScore:
    """One alerting window's score: the mean of the vector scores inside it."""

    stream: str
    index: int
    start_sample: int
    end_sample: int
    score: float
    n_vectors: int
    contributions: np.ndarray | None = None  # mean per-feature error, [F]


class WindowAggregator:
    """Vector scores -> alerting-window scores (mean of the vectors wholly inside a window).

    Vector ``v`` covers samples ``[v*stride, v*stride + span)``; window ``k`` covers
    ``[k*hop, k*hop + length)``. A window is emitted once its last vector has been scored.
    ``vector_offset`` shifts what a vector's score is about to ``[v*stride + offset, ... + span)``
    (sensor scorers score a window about its newest reading: span 1, offset T - 1).
    """

    def __init__(self, stream: str, *, vector_stride: int, vector_span: int,
                 length: int, hop: int, vector_offset: int = 0) -> None:
        if vector_span > length:
            raise ValueError(f"a vector spans {vector_span} samples, more than the "
                             f"{length}-sample alerting window")
        self.stream = stream
        self.stride, self.span, self.length, self.hop = vector_stride, vector_span, length, hop
        self.offset = vector_offset
        self.base = 0
        self.scores = np.zeros(0, dtype=np.float64)
        self.contrib: np.ndarray | None = None
        self.next_window: int | None = None
        self.expected = 0  # index of the next vector to arrive
        self._pieces: list[np.ndarray] = []  # scores pushed since the last window closed
        self._contrib_pieces: list[np.ndarray] = []

    def first_vector(self, k: int) -> int:
        return ceil_div(k * self.hop - self.offset, self.stride)

    def last_vector(self, k: int) -> int:
        return (k * self.hop + self.length - self.span - self.offset) // self.stride

    def push(self, first_vector: int, scores: np.ndarray,
             contributions: np.ndarray | None = None) -> list[WindowScore]:
        if self.next_window is None:
            self.next_window = ceil_div(first_vector * self.stride + self.offset, self.hop)
            self.base = self.expected = first_vector
        elif first_vector != self.expected:
            raise ValueError(f"{self.stream}: vectors are not contiguous "
                             f"(expected {self.expected}, got {first_vector})")
        self.expected = end = first_vector + len(scores)
        # When windows leave gaps between them (hop > length - span), ``base`` can run ahead
        # of the vectors received: the ones before it belong to no window.
        skip = max(0, self.base - first_vector)
        # kept as pieces until a window closes (most pushes close none): one concatenation
        # per window instead of one per push
        self._pieces.append(np.asarray(scores, dtype=np.float64)[skip:])
        if contributions is not None:  # kept as given (float32 from the scorers): averaged in float64
            self._contrib_pieces.append(np.asarray(contributions)[skip:])
        if self.last_vector(self.next_window) >= end:
            return []
        self.scores = np.concatenate([self.scores, *self._pieces])
        self._pieces = []
        if self._contrib_pieces:
            parts = self._contrib_pieces if self.contrib is None else [self.contrib, *self._contrib_pieces]
            self.contrib = np.concatenate(parts)
            self._contrib_pieces = []
        out: list[WindowScore] = []
        while self.last_vector(self.next_window) < end:
            k = self.next_window
            lo, hi = self.first_vector(k) - self.base, self.last_vector(k) - self.base + 1
            lo = max(lo, 0)
            sel = self.scores[lo:hi]
            if len(sel):
                contrib = None if self.contrib is None else self.contrib[lo:hi].mean(axis=0, dtype=np.float64)
                out.append(WindowScore(self.stream, k, k * self.hop, k * self.hop + self.length,
                                       float(sel.mean()), len(sel), contrib))
            self.next_window = k + 1
            drop = max(0, self.first_vector(self.next_window) - self.base)
            if drop:
                self.scores = self.scores[drop:]
                if self.contrib is not None:
                    self.contrib = self.contrib[drop:]
                self.base += drop
        return out
