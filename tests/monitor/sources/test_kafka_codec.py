"""Wire formats of the Kafka topics: audio chunks and sensor readings, good and bad."""
from __future__ import annotations

import numpy as np
import pytest

from monitor.kafka.producer import OutChunk, file_chunks, publish_audio, ts_for
from monitor.sources.kafka_audio import BadMessage, audio_headers, decode_audio, encode_audio
from monitor.sources.kafka_sensors import decode_sensors


def test_audio_round_trip_s16_f32_and_stereo(rng):
    x = (rng.uniform(-1, 1, 1600) * 0.5).astype(np.float32)
    h = audio_headers(sample_rate=16000, ts_ns=10**9, seq=3, machine="pump-2", eos=True)
    c = decode_audio(b"line3/pump-2", encode_audio(x), h)
    assert c.stream == "line3/pump-2" and c.seq == 3 and c.machine == "pump-2" and c.eos
    assert c.grid_sample() == 16000
    assert np.max(np.abs(c.samples - x)) <= 1 / 32768
    # s16le mono also hands on its int16 samples, which give the float32 ones back exactly
    assert c.pcm16.dtype == np.int16 and np.array_equal(c.pcm16.astype(np.float32) / 32768, c.samples)
    f = decode_audio(b"s", encode_audio(x, fmt="f32le"), audio_headers(sample_rate=16000, ts_ns=0, seq=0, fmt="f32le"))
    assert np.array_equal(f.samples, x) and f.pcm16 is None
    stereo = np.stack([x, -x], axis=1).astype("<f4").tobytes()
    s = decode_audio(b"s", stereo, audio_headers(sample_rate=16000, ts_ns=0, seq=0, fmt="f32le", channels=2))
    assert np.allclose(s.samples, 0)


@pytest.mark.parametrize("key, value, change, code", [
    (None, b"\0\0", {}, "no-key"),
    (b"\xff\xfe", b"\0\0", {}, "bad-key"),
    (b"s", b"\0\0", {"seq": None}, "missing-header"),
    (b"s", b"\0\0", {"sample_rate": b"x"}, "bad-header"),
    (b"s", b"\0\0", {"sample_rate": b"5"}, "bad-header"),
    (b"s", b"\0\0", {"format": b"u8"}, "unknown-format"),
    (b"s", b"\0\0\0", {}, "odd-byte-count"),
    (b"s", b"", {}, "empty-value"),
    (b"s", np.array([0, np.nan], "<f4").tobytes(), {"format": b"f32le"}, "non-finite"),
])
def test_bad_audio_messages(key, value, change, code):
    h = dict(audio_headers(sample_rate=16000, ts_ns=0, seq=0))
    for k, v in change.items():
        if v is None:
            h.pop(k)
        else:
            h[k] = v
    with pytest.raises(BadMessage) as e:
        decode_audio(key, value, list(h.items()))
    assert e.value.code == code


def test_sensor_readings():
    s, r = decode_sensors(b"rig/1", b'{"ts": 5, "values": {"t": 71.5, "p": 2}}')
    assert s == "rig/1" and r[0].ts_ns == 5 and r[0].values == {"t": 71.5, "p": 2.0}
    _, r = decode_sensors(b"k", b'[{"ts": "1970-01-01T00:00:01Z", "values": {"t": 1}}, {"ts": 2, "values": {"t": 2}}]')
    assert [x.ts_ns for x in r] == [10**9, 2]


@pytest.mark.parametrize("value, code", [
    (b"nope", "bad-json"), (b"[]", "bad-reading"), (b'{"ts": 1}', "bad-reading"),
    (b'{"ts": 1, "values": {}}', "bad-values"), (b'{"ts": 1, "values": {"a": true}}', "bad-values"),
    (b'{"ts": 1, "values": {"a": Infinity}}', "bad-values"), (b'{"ts": -1, "values": {"a": 1}}', "bad-ts"),
    (b'{"ts": "soon", "values": {"a": 1}}', "bad-ts"), (b'{"ts": 1, "values": {"a": 1}, "x": 0}', "bad-reading"),
])
def test_bad_sensor_messages(value, code):
    with pytest.raises(BadMessage) as e:
        decode_sensors(b"k", value)
    assert e.value.code == code


def test_timestamps_land_back_on_the_sample_grid():
    for sr in (16000, 44100, 48000):
        base = (1_763_000_000_123_456_789 * sr + 500_000_000) // 10**9
        for pos in (0, 1, 1599, 10**7 + 3):
            ts = ts_for(base, pos, sr)
            assert (ts * sr + 500_000_000) // 10**9 == base + pos


class _Recorder:
    def __init__(self):
        self.sent = []

    def send(self, topic, *, key, value, headers):
        self.sent.append((topic, key, value, dict(headers)))

    def flush(self):
        pass


def test_publish_numbers_chunks_per_stream_and_marks_the_end(tmp_path, rng):
    import soundfile as sf

    for i, n in enumerate((4000, 2500)):
        sf.write(tmp_path / f"c{i}.wav", (rng.uniform(-0.1, 0.1, n)).astype(np.float32), 16000, subtype="PCM_16")
    rec = _Recorder()
    st = publish_audio(rec, "t", file_chunks(sorted(tmp_path.glob("*.wav")), chunk_ms=100), start_ts_ns=0)
    assert st.streams == 2 and st.messages == 3 + 2
    by = {}
    for _, key, value, h in rec.sent:
        by.setdefault(key, []).append(h)
    assert [int(h["seq"]) for h in by[b"c0"]] == [0, 1, 2]
    assert [int(h["ts"]) for h in by[b"c0"]] == [0, 100_000_000, 200_000_000]
    assert [h.get("eos") for h in by[b"c0"]] == [None, None, b"1"]
    from itertools import islice

    chunks = list(islice(file_chunks(sorted(tmp_path.glob("*.wav")), streams=3, prefix="l/", loop=True,
                                     chunk_ms=100), 9))
    assert {c.stream for c in chunks} == {"l/stream-0000", "l/stream-0001", "l/stream-0002"}
    assert not any(c.eos for c in chunks) and all(len(c.samples) == 1600 for c in chunks)
    assert isinstance(chunks[0], OutChunk)
