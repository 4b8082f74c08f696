"""Plausibility bounds: oversized chunks and capture times far from the message's timestamp."""
from __future__ import annotations

import numpy as np
import pytest

from monitor.config import ServiceConfig
from monitor.service.plausibility import NS_PER_S, Bounds, message_timestamp
from monitor.sources.kafka_audio import BadMessage, audio_headers, decode_audio

DAY = 86400 * NS_PER_S


def test_a_chunk_over_max_chunk_s_is_refused_before_conversion():
    h = audio_headers(sample_rate=16000, ts_ns=0, seq=0)
    ok = np.zeros(16000 * 5, "<i2").tobytes()  # exactly 5 s: allowed
    assert len(decode_audio(b"s", ok, h, max_seconds=5.0).samples) == 80000
    with pytest.raises(BadMessage) as e:
        decode_audio(b"s", ok + b"\0\0", h, max_seconds=5.0)
    assert e.value.code == "oversized-chunk" and "5.00 s" in e.value.detail
    stereo = np.zeros(2 * 16000 * 5, "<i2").tobytes()  # 5 s in two channels is still 5 s
    assert decode_audio(b"s", stereo, audio_headers(sample_rate=16000, ts_ns=0, seq=0, channels=2),
                        max_seconds=5.0).sample_rate == 16000
    assert len(decode_audio(b"s", np.zeros(16000 * 60, "<i2").tobytes(), h).samples) == 16000 * 60  # no bound


def test_capture_time_against_the_message_timestamp():
    b = Bounds.from_config(ServiceConfig())  # defaults: 5 s chunks, 300 s ahead, no behind check
    now_ms = 1_760_000_000_000
    b.check_time(now_ms * 10**6 - 100 * DAY, now_ms * 10**6 - 100 * DAY, now_ms)  # old audio: allowed
    b.check_time(now_ms * 10**6 + 299 * NS_PER_S, now_ms * 10**6 + 299 * NS_PER_S, now_ms)  # clock skew
    with pytest.raises(BadMessage) as e:
        b.check_time(now_ms * 10**6 + 365 * DAY, now_ms * 10**6 + 365 * DAY, now_ms)
    assert e.value.code == "ts-ahead-of-message" and "max_ts_ahead_s = 300" in e.value.detail
    b.check_time(now_ms * 10**6 + 365 * DAY, now_ms * 10**6 + 365 * DAY, None)  # no timestamp: no check
    strict = Bounds.from_config(ServiceConfig(max_ts_behind_s=3600, max_ts_ahead_s=0))
    strict.check_time(now_ms * 10**6 + 365 * DAY, now_ms * 10**6 + 365 * DAY, now_ms)  # ahead off
    with pytest.raises(BadMessage) as e:
        strict.check_time(0, 0, now_ms)
    assert e.value.code == "ts-behind-message"


def test_message_timestamp_of_either_client():
    class Rec:
        timestamp = 1234

    class NoTs:
        timestamp = -1

    assert message_timestamp(Rec()) == 1234
    assert message_timestamp(NoTs()) is None and message_timestamp(object()) is None
