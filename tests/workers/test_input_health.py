"""Input-health checks on the alerting-window grid: clipping, digital silence, low level."""
from __future__ import annotations

import numpy as np
import pytest

from workers.input_health import (CLIPPING, DEAD_INPUT, AudioHealth, AudioHealthSpec,
                                  level_percentiles, rms_dbfs)
from workers.resample import StreamResampler

SR = 16000
LEN, HOP = SR, SR // 2


def run_windows(health: AudioHealth, audio: np.ndarray, *, chunk: int = 1600):
    """Push ``audio`` in chunks, assessing each window once its samples are in."""
    transitions, levels = [], []
    k = 0
    for i in range(0, len(audio), chunk):
        health.push(audio[i:i + chunk], start_sample=i)
        while k * HOP + LEN <= i + len(audio[i:i + chunk]):
            lv, t = health.assess(k * HOP, k * HOP + LEN)
            levels.append(lv)
            transitions += t
            k += 1
    return transitions + health.finish(), levels


def noise(seconds: float, level: float, seed: int = 0) -> np.ndarray:
    return (level * np.random.default_rng(seed).standard_normal(round(seconds * SR))).astype(np.float32)


def test_levels_do_not_depend_on_chunking():
    x = noise(5, 0.05)
    _, a = run_windows(AudioHealth(length=LEN, hop=HOP), x, chunk=1600)
    _, b = run_windows(AudioHealth(length=LEN, hop=HOP), x, chunk=333)
    assert len(a) == len(b) == 9
    for u, v in zip(a, b):
        assert u.rms_dbfs == pytest.approx(v.rms_dbfs, abs=1e-9) and u.peak == v.peak
        assert u.rms_dbfs == pytest.approx(rms_dbfs(x[u.start_sample:u.end_sample]), abs=1e-6)


def test_clipping_opens_and_closes_with_hysteresis():
    x = noise(8, 0.05)
    x[2 * SR:4 * SR] = np.clip(x[2 * SR:4 * SR] * 40, -1, 1)  # hard clipping for 2 s
    t, _ = run_windows(AudioHealth(length=LEN, hop=HOP), x)
    clip = [e for e in t if e.kind == CLIPPING]
    assert [e.status for e in clip] == ["open", "closed"]
    assert clip[0].start_sample == 1.5 * SR  # first window touching the clipped span
    assert clip[1].end_sample == 4.5 * SR  # the last window touching it, [3.5 s, 4.5 s)
    assert "full scale" in clip[0].detail
    assert not [e for e in t if e.kind == DEAD_INPUT]


def test_digital_silence_and_short_silence_inside_a_window():
    x = noise(8, 0.05)
    x[3 * SR:5 * SR] = 0.0
    t, levels = run_windows(AudioHealth(length=LEN, hop=HOP, min_silence=512), x)
    dead = [e for e in t if e.kind == DEAD_INPUT]
    assert [e.status for e in dead] == ["open", "closed"]
    assert dead[0].start_sample == int(2.5 * SR)  # the first window holding silence
    y = noise(4, 0.05)
    y[SR + 100:SR + 100 + 700] = 0.0  # 44 ms of silence: one whole log-mel frame
    h = AudioHealth(length=LEN, hop=HOP, min_silence=512)
    _, lv = run_windows(h, y)
    assert h.is_dead(lv[1])[0] and not h.is_dead(lv[4])[0]
    assert "digital silence in" in h.is_dead(lv[1])[1]


def test_level_far_below_training_is_dead_and_quiet_but_normal_is_not():
    h = AudioHealth(length=LEN, hop=HOP, reference_dbfs=-30.0, spec=AudioHealthSpec(dead_margin_db=30))
    _, lv = run_windows(h, noise(2, 10 ** (-40 / 20)))  # 10 dB under training: fine
    assert not h.is_dead(lv[0])[0]
    h2 = AudioHealth(length=LEN, hop=HOP, reference_dbfs=-30.0)
    t, lv = run_windows(h2, noise(3, 10 ** (-75 / 20)))  # 45 dB under (but not silent)
    assert h2.is_dead(lv[0])[0] and "below the training level" in h2.is_dead(lv[0])[1]
    assert [e.status for e in t if e.kind == DEAD_INPUT] == ["open", "closed"]
    assert t[-1].fields.get("closed_by") == "end-of-stream"


def test_level_percentiles():
    p = level_percentiles([-50.0, -40.0, float("-inf"), -45.0])
    assert p["windows"] == 3 and p["median"] == -45.0 and p["p1"] < p["p99"]


@pytest.mark.parametrize("sr_in,sr_out", [(48000, 16000), (44100, 16000), (8000, 16000), (16000, 16000)])
def test_stream_resampler_chunked_equals_resample_poly(sr_in, sr_out):
    from math import gcd

    from scipy.signal import resample_poly

    rng = np.random.default_rng(3)
    x = rng.standard_normal(sr_in).astype(np.float32)
    g = gcd(sr_in, sr_out)
    want = resample_poly(x.astype(np.float64), sr_out // g, sr_in // g)
    r = StreamResampler(sr_in=sr_in, sr_out=sr_out)
    parts, i = [], 0
    for n in rng.integers(1, 2500, size=10_000):
        parts.append(r.push(x[i:i + n]))
        i += n
        if i >= len(x):
            break
    got = np.concatenate(parts + [r.flush()])
    assert len(got) == len(want) == sr_out
    np.testing.assert_allclose(got, want, atol=5e-5)
    assert np.abs(got).max() > 0.5  # not trivially zero
