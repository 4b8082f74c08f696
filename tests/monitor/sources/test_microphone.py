"""The microphone source's capture bookkeeping and the live loop, without a sound device.

The PortAudio callback is a plain method: these tests call it with blocks and time stamps the
way PortAudio does, then read the chunks back. The real device path (PulseAudio virtual mic)
is covered by tests/integration/test_listen_virtual_mic.py.
"""
from __future__ import annotations

import sys
import time
from types import SimpleNamespace

import numpy as np
import pytest

from monitor.runtime.drive import LatencyStats, _Captures, drive
from monitor.runtime.runner import StreamRunner
from monitor.sources.base import AudioChunk
from monitor.sources.microphone import MicrophoneError, MicrophoneSource, import_sounddevice
from monitor.synth import machine_sound
from workers.input_health import AudioHealthSpec
from workers.model import load_model

SR = 16000
BLOCK = 1600


def ok() -> SimpleNamespace:
    return SimpleNamespace(input_overflow=False)


def call(src: MicrophoneSource, block: np.ndarray, adc: float, *, status=None) -> None:
    frames = len(block)
    info = SimpleNamespace(inputBufferAdcTime=adc, currentTime=adc + frames / src.rate)
    src._callback(block.reshape(-1, 1), frames, info, status or ok())


def blocks(n: int, seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.integers(-3000, 3000, size=BLOCK, dtype=np.int16) for _ in range(n)]


def read_all(src: MicrophoneSource) -> list[AudioChunk]:
    src.stop()
    return list(src.chunks())


def test_blocks_become_chunks_on_the_capture_grid_with_capture_times():
    src = MicrophoneSource(sample_rate=SR, queue_s=5)
    src._prepare(rate=SR, channels=1)
    bs = blocks(4)
    t0 = time.time()
    for i, b in enumerate(bs):
        call(src, b, adc=1000.0 + i * 0.1)
    chunks = read_all(src)
    assert [c.start_sample for c in chunks] == [0, 1600, 3200, 4800]
    for c, b in zip(chunks, bs):
        # int16 -> float exactly as soundfile reads a 16-bit WAV
        np.testing.assert_array_equal(c.samples, b.astype(np.float32) / 32768)
        assert c.samples.dtype == np.float32
    caps = [c.capture_time_s for c in chunks]
    # each block's first sample was captured one block before the callback ran
    assert all(t0 - 0.2 < t < time.time() for t in caps)
    assert chunks[0].time_origin_s == pytest.approx(caps[0])
    assert src.stats.blocks == 4 and src.stats.dropped_blocks == 0


def test_full_queue_drops_blocks_counts_them_and_leaves_a_gap():
    src = MicrophoneSource(sample_rate=SR, queue_s=0.3, block_ms=100)  # room for 3 blocks
    src._prepare(rate=SR, channels=1)
    bs = blocks(6)
    for i, b in enumerate(bs[:5]):
        call(src, b, adc=10.0 + i * 0.1)
    assert src.stats.dropped_blocks == 2 and src.stats.dropped_samples == 2 * BLOCK
    call_later = bs[5]
    got = []
    reader = src.chunks()
    for _ in range(3):
        got.append(next(reader))
    call(src, call_later, adc=10.5)
    src.stop()
    got += list(reader)
    assert [c.start_sample for c in got] == [0, 1600, 3200, 8000]


def test_portaudio_overflow_shifts_the_grid_by_the_lost_time():
    src = MicrophoneSource(sample_rate=SR)
    src._prepare(rate=SR, channels=1)
    bs = blocks(3)
    call(src, bs[0], adc=5.0)
    call(src, bs[1], adc=5.1)
    # the device lost 0.25 s before the third block and says so
    call(src, bs[2], adc=5.45, status=SimpleNamespace(input_overflow=True))
    chunks = read_all(src)
    assert src.stats.overflows == 1
    assert src.stats.lost_samples == pytest.approx(4000, abs=2)
    assert chunks[2].start_sample == pytest.approx(3200 + 4000, abs=2)


def test_device_rate_is_resampled_to_the_model_rate_continuously():
    src = MicrophoneSource(sample_rate=SR)
    src._prepare(rate=48000, channels=1)
    t = np.arange(48000 * 2) / 48000
    x = (0.3 * np.sin(2 * np.pi * 440 * t) * 32767).astype(np.int16)
    for i in range(0, len(x), 4800):
        call(src, x[i:i + 4800], adc=1.0 + i / 48000)
    chunks = read_all(src)
    starts = [c.start_sample for c in chunks]
    ends = [c.start_sample + len(c.samples) for c in chunks]
    assert starts[1:] == ends[:-1] and starts[0] == 0  # contiguous on the 16 kHz grid
    y = np.concatenate([c.samples for c in chunks])
    assert abs(len(y) - 2 * SR) <= 300  # the filter's tail is held back
    ref = 0.3 * np.sin(2 * np.pi * 440 * np.arange(len(y)) / SR)
    assert np.abs(y[400:-400] - ref[400:-400]).max() < 2e-3


def test_max_samples_stops_the_reader():
    src = MicrophoneSource(sample_rate=SR, max_samples=4000)
    src._prepare(rate=SR, channels=1)
    for i, b in enumerate(blocks(5)):
        call(src, b, adc=1.0 + i * 0.1)
    chunks = list(src.chunks())
    assert sum(len(c.samples) for c in chunks) == 4000


def test_missing_sounddevice_names_what_to_install(monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "sounddevice", None)
    with pytest.raises(MicrophoneError, match="pip install sounddevice"):
        import_sounddevice()
    from monitor.cli import main

    assert main(["devices"]) == 2
    assert "pip install sounddevice" in capsys.readouterr().err


def test_latency_stats_and_capture_lookup():
    st = LatencyStats()
    for v in np.linspace(0.01, 0.1, 100):
        st.add(float(v))
    s = st.summary()
    assert s["windows"] == 100 and 50 < s["p50_ms"] < 60 and 98 < s["p99_ms"] <= 100
    caps = _Captures()
    caps.add(AudioChunk("m", np.zeros(1600, np.float32), SR, 0, capture_time_s=100.0))
    caps.add(AudioChunk("m", np.zeros(1600, np.float32), SR, 1600, capture_time_s=100.1))
    assert caps.time_of(1599) == pytest.approx(100.0 + 1599 / SR)
    assert caps.time_of(3199) == pytest.approx(100.1 + 1599 / SR)
    assert caps.time_of(5000) is None


def chunked(stream: str, audio: np.ndarray, *, start: int = 0, step: int = BLOCK):
    for i in range(0, len(audio), step):
        yield AudioChunk(stream, audio[i:i + step], SR, start + i)


def test_dead_input_is_reported_and_kept_out_of_machine_alerting(trained_model):
    model = load_model(trained_model, device="cpu")
    sound = machine_sound(seconds=4, f0=110.0, seed=99)
    audio = np.concatenate([np.zeros(2 * SR, np.float32), sound, np.zeros(2 * SR, np.float32)])
    plain = StreamRunner(model, keep_windows=True)
    plain_events = [e for c in chunked("m", audio) for e in plain.feed(c)] + plain.close()
    live = StreamRunner(model, keep_windows=True, health=AudioHealthSpec())
    res = drive(chunked("m", audio), live)
    # the scorer does flag silence: that is why dead windows stay out of machine alerting
    assert any(e["kind"] == "machine" for e in plain_events)
    assert not [e for e in res.events if e["kind"] == "machine"]
    dead = [e for e in res.events if e["kind"] == "dead-input"]
    assert [e["status"] for e in dead] == ["open", "closed", "open", "closed"]
    assert dead[0]["start_sample"] == 0 and dead[1]["end_sample"] <= 2 * SR + SR
    assert dead[-1]["closed_by"] == "end-of-stream"
    # gating changes no score
    a = [w.score for r in plain.finished for w in r.windows]
    b = [w.score for r in live.finished for w in r.windows]
    assert a == b and len(a) == 15


def test_a_gap_raises_input_dropout_and_keeps_the_capture_grid(trained_model):
    model = load_model(trained_model, device="cpu")
    audio = machine_sound(seconds=6, f0=110.0, seed=5)
    chunks = list(chunked("m", audio))
    del chunks[20:23]  # 3 blocks (0.3 s) lost at 2.0 s
    live = StreamRunner(model, keep_windows=True, health=AudioHealthSpec())
    res = drive(iter(chunks), live)
    drop = [e for e in res.events if e["kind"] == "input-dropout"]
    assert [e["status"] for e in drop] == ["open", "closed"]
    assert drop[0]["start_sample"] == 20 * BLOCK and drop[0]["end_sample"] == 23 * BLOCK
    assert drop[0]["lost_samples"] == 3 * BLOCK and res.dropouts == 1
    windows = [w for r in live.finished for w in r.windows]
    gap = (20 * BLOCK, 23 * BLOCK)
    assert not [w for w in windows if w.start_sample < gap[1] and w.end_sample > gap[0]]
    assert all(w.start_sample % (SR // 2) == 0 for w in windows)  # still on the capture grid
    # windows after the gap score exactly as the same audio does without a gap
    ref = StreamRunner(model, keep_windows=True)
    for c in chunked("m", audio):
        ref.feed(c)
    ref.close()
    want = {w.index: w.score for r in ref.finished for w in r.windows}
    after = [w for w in windows if w.start_sample >= gap[1]]
    assert after and all(w.score == pytest.approx(want[w.index], rel=1e-5) for w in after)


def test_realtime_file_replay_measures_latency(trained_model, factory, tmp_path):
    import soundfile as sf

    from monitor.runtime.replay import replay

    model = load_model(trained_model, device="cpu")
    path = tmp_path / "normal_id_00_00000000.wav"
    sf.write(path, machine_sound(seconds=1.5, f0=110.0, seed=3), SR, subtype="PCM_16")
    t0 = time.monotonic()
    fast = replay(model, path)
    res = replay(model, path, realtime=True)
    assert time.monotonic() - t0 >= 1.4  # paced
    assert res.drive.latency.count == len(res.streams[0].windows) == 2
    assert 0 <= res.drive.latency.quantile(0.5) < 1.0
    assert [w.score for w in res.streams[0].windows] == [w.score for w in fast.streams[0].windows]
    assert fast.drive.latency.count == 0  # as fast as possible: no capture times, no latency


def test_training_stores_the_input_level_the_dead_input_check_uses(trained_model):
    model = load_model(trained_model, device="cpu")
    lv = model.meta["input_level"]["window_rms_dbfs"]
    # the synthetic machines are normalised to 0.08 RMS: about -22 dBFS
    assert -25 < lv["p1"] <= lv["median"] <= lv["p99"] < -19 and lv["windows"] > 50
    runner = StreamRunner(model, health=AudioHealthSpec())
    assert runner.reference_dbfs == lv["p1"]
    quiet = machine_sound(seconds=4, f0=110.0, seed=1) * np.float32(10 ** (-40 / 20))  # 40 dB down
    res = drive(chunked("m", quiet), runner)
    dead = [e for e in res.events if e["kind"] == "dead-input"]
    assert dead and "below the training level" in dead[0]["detail"]
    assert not [e for e in res.events if e["kind"] == "machine"]
