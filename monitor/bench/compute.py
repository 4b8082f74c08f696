"""The compute part: log-mel + scorer on batched clips, and the streaming pipeline's ceiling.

``batched_clip_scores`` is the work a worker does per flush, without Kafka: int16 PCM ->
float32 -> frames -> log-mel -> vectors -> scores, many clips per batch. It scores exactly the
vectors the DCASE way scores (every 5-frame vector of every clip), so the clip scores of the
two paths can be compared one by one.
"""
from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch

from workers.features import stack_frames
from workers.model import LoadedModel
from workers.pipeline import ScoringPipeline


@dataclass
class Split:
    """Wall seconds of one pass, and how they divide between features and the model."""

    seconds: float = 0.0
    features_s: float = 0.0
    model_s: float = 0.0
    read_s: float = 0.0  # the DCASE way's file reads (counted in features_s too)


def sync(device: torch.device) -> None:
    """Wait for queued GPU work, so a timer measures the work and not its launch."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


@contextlib.contextmanager
def plain_mode(model: LoadedModel) -> Iterator[None]:
    """Run the unoptimised maths (plain log-mel, module as trained) inside the block."""
    fe_mod, scorer = model.frontend.module, model.scorer
    saved = (getattr(fe_mod, "fast", None), getattr(scorer, "fast", None))
    if saved[0] is not None:
        fe_mod.fast = False
    if saved[1] is not None:
        scorer.fast = False
    try:
        yield
    finally:
        if saved[0] is not None:
            fe_mod.fast = saved[0]
        if saved[1] is not None:
            scorer.fast = saved[1]


@contextlib.contextmanager
def torch_threads(n: int) -> Iterator[None]:
    """``n`` torch intra-op threads, and ``n`` BLAS threads for numpy (librosa's mel matmul):
    on a busy 2-core box a second spinning thread makes small calls several times slower."""
    old = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        from threadpoolctl import threadpool_limits  # noqa: PLC0415 - comes with scikit-learn
    except ImportError:  # pragma: no cover
        threadpool_limits = None
    try:
        if threadpool_limits is None:
            yield
        else:
            with threadpool_limits(limits=n, user_api="blas"):
                yield
    finally:
        torch.set_num_threads(old)


def batched_clip_scores(model: LoadedModel, pcm: list[np.ndarray], *, clips_per_batch: int,
                        split: Split | None = None) -> np.ndarray:
    """Clip scores (mean vector score, the DCASE protocol) of int16 clips, batch by batch."""
    fe, scorer = model.frontend, model.scorer
    spec, dev = scorer.input_spec, model.device
    scale = np.float32(1.0 / 32768.0)  # exact (a power of two): what soundfile does
    out = np.empty(len(pcm), dtype=np.float64)
    for b0 in range(0, len(pcm), clips_per_batch):
        t0 = time.perf_counter()
        clips = [p.astype(np.float32) * scale for p in pcm[b0:b0 + clips_per_batch]]
        views = [np.lib.stride_tricks.sliding_window_view(x, fe.frame_len)[::fe.frame_hop] for x in clips]
        counts = [len(v) for v in views]
        frames = torch.from_numpy(np.concatenate(views))
        feats = fe.features(frames)
        sync(dev)
        t1 = time.perf_counter()
        vec_parts, n_vec, off = [], [], 0
        for n in counts:
            v = stack_frames(feats[off:off + n], n_frames=spec.frames, hop=spec.hop)
            vec_parts.append(v)
            n_vec.append(len(v))
            off += n
        scores, _ = scorer.score_detail(torch.cat(vec_parts))
        scores = scores.double().cpu().numpy()
        t2 = time.perf_counter()
        off = 0
        for i, n in enumerate(n_vec):
            out[b0 + i] = scores[off:off + n].mean()
            off += n
        if split is not None:
            split.features_s += t1 - t0
            split.model_s += t2 - t1
            split.seconds += t2 - t0
    return out


def parallel_clip_scores(model: LoadedModel, pcm: list[np.ndarray], *, clips_per_batch: int, threads: int,
                         split: Split | None = None) -> np.ndarray:
    """``batched_clip_scores`` on ``threads`` Python threads, each on its share of the clips.

    With one torch intra-op thread each, the two halves run truly in parallel (torch releases the
    GIL inside its ops): no OpenMP team spinning between the many small calls of a batch.
    """
    if threads <= 1 or len(pcm) < 2:
        return batched_clip_scores(model, pcm, clips_per_batch=clips_per_batch, split=split)
    from concurrent.futures import ThreadPoolExecutor  # noqa: PLC0415

    shards = [list(range(i, len(pcm), threads)) for i in range(threads)]
    splits = [Split() for _ in shards]
    t0 = time.perf_counter()
    with ThreadPoolExecutor(threads) as pool:
        parts = list(pool.map(lambda k: batched_clip_scores(model, [pcm[i] for i in shards[k]],
                                                             clips_per_batch=clips_per_batch, split=splits[k]),
                              range(len(shards))))
    out = np.empty(len(pcm), dtype=np.float64)
    for idx, scores in zip(shards, parts):
        out[idx] = scores
    if split is not None:  # shares of the threads' summed time; seconds = wall
        split.features_s += sum(x.features_s for x in splits) / threads
        split.model_s += sum(x.model_s for x in splits) / threads
        split.seconds += time.perf_counter() - t0
    return out


def streaming_pass(model: LoadedModel, pcm: list[np.ndarray], *, chunk_ms: float = 100.0,
                   flush_ms: float = 500.0) -> tuple[float, int]:
    """Every clip as a live stream through ``ScoringPipeline`` in ``chunk_ms`` chunks.

    Returns (wall seconds, alerting windows scored): the ceiling of a worker without Kafka,
    per-stream Python work included.
    """
    sr = model.frontend.sample_rate
    chunk = round(chunk_ms * sr / 1000)
    per_flush = max(1, round(flush_ms / chunk_ms))
    pipe = ScoringPipeline(model)
    scale = np.float32(1.0 / 32768.0)
    n_chunks = max(len(p) for p in pcm) // chunk
    names = [f"s{i}" for i in range(len(pcm))]
    windows = 0
    t0 = time.perf_counter()
    for c in range(n_chunks):
        a = c * chunk
        for name, p in zip(names, pcm):
            pipe.push(name, p[a:a + chunk].astype(np.float32) * scale, start_sample=a)
        if (c + 1) % per_flush == 0:
            windows += len(pipe.flush())
    windows += len(pipe.flush())
    sync(model.device)
    return time.perf_counter() - t0, windows


def time_repeated(fn, *, min_seconds: float, min_reps: int = 2, max_reps: int = 50) -> list[float]:
    """Wall seconds of repeated calls of ``fn`` (at least ``min_reps``, about ``min_seconds``)."""
    times: list[float] = []
    start = time.perf_counter()
    while len(times) < min_reps or (time.perf_counter() - start < min_seconds and len(times) < max_reps):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return times
