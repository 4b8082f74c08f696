"""Framing, vector stacking and window aggregation do not depend on chunking or resumption."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from workers.windowing import SampleFramer, VectorStacker, WindowAggregator


def _frames_by_chunks(x, sizes, *, frame_len=8, hop=3, start=0):
    f = SampleFramer(frame_len=frame_len, hop=hop, start_sample=start)
    out, firsts, pos, i = [], [], 0, 0
    while pos < len(x):
        n = sizes[i % len(sizes)]
        first, frames = f.push(x[pos:pos + n])
        pos, i = pos + n, i + 1
        if len(frames):
            firsts.append(first)
            out.append(frames)
    return firsts, np.concatenate(out)


def test_framer_chunking_invariant():
    x = np.arange(200, dtype=np.float32)
    _, whole = _frames_by_chunks(x, [200])
    for sizes in ([1], [7, 2, 13], [3], [50, 1, 1, 90]):
        _, got = _frames_by_chunks(x, sizes)
        np.testing.assert_array_equal(got, whole)
    assert whole[0, 0] == 0 and whole[1, 0] == 3 and whole.shape == (1 + (200 - 8) // 3, 8)


def test_framer_resumes_on_the_grid():
    """A stream restarted at sample 10 yields the frames of the full stream from frame 4 on."""
    x = np.arange(100, dtype=np.float32)
    _, whole = _frames_by_chunks(x, [100])
    firsts, resumed = _frames_by_chunks(x[10:], [5], start=10)
    assert firsts[0] == 4  # ceil(10 / 3)
    np.testing.assert_array_equal(resumed, whole[4:4 + len(resumed)])


@pytest.mark.parametrize("T,h", [(5, 1), (4, 2), (1, 1)])
def test_stacker_matches_unfold(T, h):
    feats = torch.arange(60, dtype=torch.float32).reshape(30, 2)
    ref = feats.unfold(0, T, h).transpose(1, 2)
    st = VectorStacker(frames=T, hop=h)
    parts, pos = [], 0
    for n in (1, 3, 2, 7, 1, 16):
        v0, vec = st.push(pos, feats[pos:pos + n])
        pos += n
        if len(vec):
            assert v0 == sum(len(p) for p in parts)
            parts.append(vec)
    torch.testing.assert_close(torch.cat(parts), ref)


def _assert_means_of_vectors_inside(out, scores, *, stride: int, span: int) -> None:
    """Each window's score is the mean of the vectors lying wholly inside it."""
    for w in out:
        inside = [v for v in range(len(scores))
                  if v * stride >= w.start_sample and v * stride + span <= w.end_sample]
        assert w.n_vectors == len(inside)
        assert w.score == pytest.approx(scores[inside].mean())


def test_aggregator_means_the_vectors_inside_each_window():
    stride, span, length, hop = 4, 10, 40, 20
    scores = np.random.default_rng(0).random(100)
    agg = WindowAggregator("s", vector_stride=stride, vector_span=span, length=length, hop=hop)
    out = []
    for i in range(0, 100, 7):
        out += agg.push(i, scores[i:i + 7])
    assert [w.index for w in out] == list(range(len(out)))
    _assert_means_of_vectors_inside(out, scores, stride=stride, span=span)
    # the last window emitted is the last one whose vectors all exist
    assert (out[-1].index + 1) * hop + length - span > 99 * stride


def test_aggregator_rejects_vectors_longer_than_the_window():
    with pytest.raises(ValueError, match="more than"):
        WindowAggregator("s", vector_stride=1, vector_span=50, length=40, hop=20)


def test_aggregator_with_gaps_between_windows():
    """hop > length - span: some vectors lie in no window; they are skipped, not an error."""
    stride, span, length, hop = 4, 10, 20, 30
    scores = np.random.default_rng(1).random(120)
    agg = WindowAggregator("s", vector_stride=stride, vector_span=span, length=length, hop=hop)
    out = []
    for i in range(0, 120, 5):
        out += agg.push(i, scores[i:i + 5])
    assert len(out) >= 10
    _assert_means_of_vectors_inside(out, scores, stride=stride, span=span)


def test_aggregator_keeps_float32_contributions_and_averages_them_in_float64():
    """The scorers' per-feature contributions arrive as float32 and are kept so (half the memory
    per stream); each window's mean is the float64 mean of the same values, exactly."""
    stride, span, length, hop = 4, 10, 40, 20
    rng = np.random.default_rng(2)
    scores = rng.random(90)
    contrib = (rng.random((90, 16)) * 3).astype(np.float32)
    kept = WindowAggregator("s", vector_stride=stride, vector_span=span, length=length, hop=hop)
    wide = WindowAggregator("s", vector_stride=stride, vector_span=span, length=length, hop=hop)
    out32, out64 = [], []
    for i in range(0, 90, 6):
        out32 += kept.push(i, scores[i:i + 6], contrib[i:i + 6])
        out64 += wide.push(i, scores[i:i + 6], contrib[i:i + 6].astype(np.float64))
    assert len(out32) == len(out64) >= 5
    assert kept.contrib.dtype == np.float32
    for a, b in zip(out32, out64):
        assert a.contributions.dtype == np.float64
        assert np.array_equal(a.contributions, b.contributions)
