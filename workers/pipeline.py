"""The scoring loop for many streams and one model.

``push`` only frames samples (cheap, per stream); ``flush`` runs the front end over the new
frames of every stream in one batch, stacks vectors per stream, scores all vectors in one
batch on the model's device and turns vector scores into alerting-window scores. Replay,
evaluation, the microphone and the Kafka service all score through this class, so a
threshold tuned on one path holds on the others.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from .model import LoadedModel
from .windowing import SampleFramer, VectorStacker, WindowAggregator, WindowScore, stack_many


@dataclass
class StreamSummary:
    """What a stream (or a clip) produced: the DCASE clip score is the mean vector score."""

    stream: str
    samples: int = 0
    vectors: int = 0
    vector_score_sum: float = 0.0
    vector_scores: list[np.ndarray] = field(default_factory=list)

    @property
    def clip_score(self) -> float:
        return self.vector_score_sum / self.vectors if self.vectors else float("nan")

    def all_vector_scores(self) -> np.ndarray:
        return np.concatenate(self.vector_scores) if self.vector_scores else np.zeros(0)


class _Stream:
    def __init__(self, name: str, model: LoadedModel, start_sample: int, record: bool) -> None:
        fe, spec = model.frontend, model.scorer.input_spec
        length, hop = model.window.samples(fe.sample_rate)
        self.framer = SampleFramer(frame_len=fe.frame_len, hop=fe.frame_hop, start_sample=start_sample,
                                   channels=getattr(fe, "n_channels", 1))
        self.stacker = VectorStacker(frames=spec.frames, hop=spec.hop)
        # sensor front ends: a vector's score is about its newest reading (span 1, offset T - 1)
        offset = model.vector_lookback
        span = fe.frame_len if offset else model.vector_span
        self.aggregator = WindowAggregator(name, vector_stride=model.vector_stride, vector_span=span,
                                           length=length, hop=hop, vector_offset=offset)
        self.start_sample = start_sample
        self.pending: list[tuple[int, np.ndarray]] = []
        self.summary = StreamSummary(name)
        self.record = record


class ScoringPipeline:
    """Frames, features, vectors, scores and alerting windows for any number of streams."""

    def __init__(self, model: LoadedModel, *, max_batch: int = 4096, record_vectors: bool = False) -> None:
        self.model = model
        self.max_batch = max_batch
        self.record_vectors = record_vectors
        self._streams: dict[str, _Stream] = {}

    def push(self, stream: str, samples: np.ndarray, *, start_sample: int = 0) -> None:
        """Queue samples of ``stream``; ``start_sample`` places a new stream on the sample grid."""
        st = self._streams.get(stream)
        if st is None:
            st = self._streams[stream] = _Stream(stream, self.model, start_sample, self.record_vectors)
        st.summary.samples += len(samples)
        first, frames = st.framer.push(samples, copy=False)  # copied once, in flush
        if len(frames):
            st.pending.append((first, frames))

    def pending_frames(self) -> int:
        return sum(len(f) for st in self._streams.values() for _, f in st.pending)

    def flush(self) -> list[WindowScore]:
        """Score everything queued; returns the alerting windows completed, stream by stream."""
        todo = [st for st in self._streams.values() if st.pending]
        if not todo:
            return []
        # one copy of every stream's new frames into one batch; one gather for all vectors
        raw, parts, row = [], [], 0
        for st in todo:
            n = 0
            for _, f in st.pending:
                raw.append(f)
                n += len(f)
            parts.append((st.pending[0][0], row, n))
            row += n
            st.pending = []
        feats = self._features(np.concatenate(raw) if len(raw) > 1 else np.array(raw[0]))
        stacked, vectors = stack_many([st.stacker for st in todo], parts, feats)
        if not len(vectors):
            return []
        scores, contrib = self._score(vectors)
        # scores in float64 once for the whole batch; contributions stay float32 (the aggregator
        # averages them in float64, which gives the same values, and keeps half the memory)
        scores64 = scores.astype(np.float64)
        out: list[WindowScore] = []
        offset = 0
        for st, (v0, n) in zip(todo, stacked):
            if not n:
                continue
            s = scores[offset:offset + n]
            s64 = scores64[offset:offset + n]
            c = None if contrib is None else contrib[offset:offset + n]
            offset += n
            st.summary.vectors += n
            st.summary.vector_score_sum += float(s.sum(dtype=np.float64))
            if st.record:
                st.summary.vector_scores.append(s)
            out.extend(st.aggregator.push(v0, s64, c))
        return out

    def resume_point(self, stream: str) -> tuple[int, int | None] | None:
        """Where a fresh pipeline takes ``stream`` over: (the first sample to push it, and
        everything after; the index of the next alerting window, None before any vector was
        scored). The sample is the vector-grid point at or before that window's first vector,
        so the fresh pipeline completes the window exactly as this one will (windows it
        completes before that index were emitted here already). None for an unknown stream."""
        st = self._streams.get(stream)
        if st is None:
            return None
        agg = st.aggregator
        if agg.next_window is None:
            return st.start_sample, None
        first = agg.next_window * agg.hop - agg.offset
        return max(st.start_sample, (first // agg.stride) * agg.stride), agg.next_window

    def end_stream(self, stream: str) -> StreamSummary:
        """Forget a stream (after ``flush``); windows it had not completed are dropped."""
        st = self._streams.pop(stream, None)
        return st.summary if st is not None else StreamSummary(stream)

    def streams(self) -> list[str]:
        return list(self._streams)

    def _features(self, frames: np.ndarray) -> torch.Tensor:
        fe = self.model.frontend
        if len(frames) <= self.max_batch:
            return fe.features(frames)
        return torch.cat([fe.features(frames[i:i + self.max_batch])
                          for i in range(0, len(frames), self.max_batch)])

    def _score(self, vectors: torch.Tensor) -> tuple[np.ndarray, np.ndarray | None]:
        scorer = self.model.scorer
        s_parts, c_parts = [], []
        for i in range(0, len(vectors), self.max_batch):
            s, c = scorer.score_detail(vectors[i:i + self.max_batch])
            s_parts.append(s)
            c_parts.append(c)
        scores = torch.cat(s_parts).float().cpu().numpy()
        contrib = None if c_parts[0] is None else torch.cat(c_parts).float().cpu().numpy()
        return scores, contrib
