"""File and pipe sources: chunks in order on the stream's sample grid, the last one ends the
stream, and a stop request ends the iteration (the source contract, monitor/sources/base.py)."""
from __future__ import annotations

import io

import numpy as np
import soundfile as sf

from monitor.datasets import list_clips
from monitor.sources.files import FileSource
from monitor.sources.stdin_pcm import StdinSource

SR = 16000


def _wav(path, seconds: float, seed: int) -> np.ndarray:
    a = (0.1 * np.random.default_rng(seed).standard_normal(round(seconds * SR))).astype(np.float32)
    sf.write(path, a, SR, subtype="PCM_16")
    return sf.read(path, dtype="float32")[0]


def test_file_source_chunks_each_file_as_a_stream_on_its_grid(tmp_path):
    a = _wav(tmp_path / "normal_id_00_00000000.wav", 1.05, 0)
    b = _wav(tmp_path / "normal_id_00_00000001.wav", 0.5, 1)
    src = FileSource(list_clips(tmp_path), sample_rate=SR, chunk_ms=100).open()
    chunks = list(src)
    by = {}
    for c in chunks:
        by.setdefault(c.stream, []).append(c)
    assert sorted(by) == ["normal_id_00_00000000", "normal_id_00_00000001"]
    for stream, audio in (("normal_id_00_00000000", a), ("normal_id_00_00000001", b)):
        cs = by[stream]
        assert [c.start_sample for c in cs] == list(range(0, len(audio), 1600))
        assert [c.end_of_stream for c in cs] == [False] * (len(cs) - 1) + [True]
        np.testing.assert_array_equal(np.concatenate([c.samples for c in cs]), audio)
    assert src.files_done == 2


def test_file_source_stops_when_asked(tmp_path):
    _wav(tmp_path / "normal_id_00_00000000.wav", 2.0, 0)
    src = FileSource(list_clips(tmp_path), sample_rate=SR, chunk_ms=100)
    got = []
    for c in src:
        got.append(c)
        if len(got) == 3:
            src.stop()  # as a signal handler would
    assert len(got) == 3


def test_stdin_source_reads_raw_pcm_blocks_exactly():
    pcm = (np.arange(4000) % 2000 - 1000).astype("<i2")
    src = StdinSource(sample_rate=SR, stream="line3/pump-02/mic0", block_ms=100,
                      stream_in=io.BytesIO(pcm.tobytes() + b"\x01")).open()  # a stray odd byte at the end
    chunks = list(src)
    assert [len(c.samples) for c in chunks] == [1600, 1600, 800]
    assert [c.start_sample for c in chunks] == [0, 1600, 3200]
    assert [c.end_of_stream for c in chunks] == [False, False, True]
    np.testing.assert_array_equal(np.concatenate([c.pcm16 for c in chunks]), pcm)
    assert np.concatenate([c.samples for c in chunks])[5] == np.float32(pcm[5] / 32768)
    assert src.stats.samples == 4000 and chunks[0].stream == "line3/pump-02/mic0"


def test_stdin_source_float_format_and_a_sample_limit():
    x = np.linspace(-0.5, 0.5, 3200, dtype="<f4")
    src = StdinSource(sample_rate=SR, fmt="f32le", block_ms=100, max_samples=2000,
                      stream_in=io.BytesIO(x.tobytes()))
    chunks = list(src)
    assert [len(c.samples) for c in chunks] == [1600, 400] and chunks[-1].end_of_stream
    assert chunks[0].pcm16 is None
    np.testing.assert_array_equal(np.concatenate([c.samples for c in chunks]), x[:2000])
