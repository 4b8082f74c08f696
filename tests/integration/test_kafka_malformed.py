"""1,000 malformed messages mixed into good traffic all reach the dead-letter topic with their
provenance; the worker never stops and the good streams' events are unchanged."""
from __future__ import annotations

import json
import threading

import numpy as np
import pytest

from monitor.kafka.broker import Broker, create_topics
from monitor.kafka.producer import producer_for, file_chunks, publish_audio
from monitor.sinks.dead_letter import dead_letter_fields
from monitor.sources.kafka_audio import audio_headers, encode_audio

from .kafka_utils import (TOPICS, assert_scores_match, consume_all, read_jsonl, replay_reference,
                          start_worker, stop, wait_for, windows_by_key, write_config)

pytestmark = pytest.mark.kafka

N_BAD = 1000


def _bad_messages(rng: np.random.Generator, good_keys: list[str]) -> list[tuple[str, bytes | None, bytes | None, list]]:
    """(topic, key, value, headers) of every kind of unusable message, N_BAD in all."""
    pcm = encode_audio(rng.uniform(-0.1, 0.1, 1600).astype(np.float32))
    ok = audio_headers(sample_rate=16000, ts_ns=0, seq=999_999)
    f32 = np.zeros(1600, dtype="<f4")
    nan, inf = f32.copy(), f32.copy()
    nan[7], inf[9] = np.nan, np.inf
    audio = [
        ("missing-header", lambda k: (k, pcm, [h for h in ok if h[0] != "seq"])),
        ("bad-header", lambda k: (k, pcm, [(n, b"abc" if n == "sample_rate" else v) for n, v in ok])),
        ("odd-byte-count", lambda k: (k, pcm[:-1], ok)),
        ("unknown-format", lambda k: (k, pcm, [(n, b"mp3" if n == "format" else v) for n, v in ok])),
        ("non-finite", lambda k: (k, nan.tobytes(), [(n, b"f32le" if n == "format" else v) for n, v in ok])),
        ("non-finite", lambda k: (k, inf.tobytes(), [(n, b"f32le" if n == "format" else v) for n, v in ok])),
        ("empty-value", lambda k: (k, b"", ok)),
        ("no-key", lambda k: (None, pcm, ok)),
        ("sample-rate-mismatch", lambda k: (k, pcm, [(n, b"8000" if n == "sample_rate" else v) for n, v in ok])),
        ("no-model", lambda k: ("unrouted/mic-1", pcm, ok)),
    ]
    sensors = [
        ("bad-json", lambda k: (k, b"{not json", [])),
        ("bad-reading", lambda k: (k, b'{"ts": 1, "value": {"t": 1}}', [])),
        ("bad-values", lambda k: (k, b'{"ts": 1, "values": {"t": "hot"}}', [])),
        ("bad-values", lambda k: (k, b'{"ts": 1, "values": {"t": NaN}}', [])),
        ("bad-ts", lambda k: (k, b'{"ts": "yesterday", "values": {"t": 1.0}}', [])),
        ("bad-reading", lambda k: (k, b'[{"ts": 1, "values": {"t": 1.0}}, 7]', [])),
        ("empty-value", lambda k: (k, b"", [])),
    ]
    kinds = [("machine-audio", c, f) for c, f in audio] + [("machine-sensors", c, f) for c, f in sensors]
    out = []
    for i in range(N_BAD):
        topic, code, make = kinds[i % len(kinds)]
        key, value, headers = make(good_keys[i % len(good_keys)])
        headers = list(headers) + [("test_id", str(i).encode()), ("expect", code.encode())]
        out.append((topic, key.encode() if key else None, value, headers))
    return out


def test_malformed_messages_all_dead_lettered(factory, trained_model, tmp_path):
    folder = factory["test"]
    ref_events, ref_windows = replay_reference(trained_model, folder)
    files = sorted(__import__("pathlib").Path(folder).glob("*.wav"))
    bad = _bad_messages(np.random.default_rng(3), [f.stem for f in files])
    events_path, windows_path = tmp_path / "events.jsonl", tmp_path / "windows.jsonl"
    with Broker() as broker:
        create_topics(broker.bootstrap, TOPICS)
        cfg = write_config(tmp_path / "cfg.yaml", bootstrap=broker.bootstrap, events=events_path,
                           windows=windows_path, routes=[("normal_*", trained_model), ("anomaly_*", trained_model)])
        worker = start_worker(cfg, log=tmp_path / "w.log")
        try:
            p = producer_for(broker.bootstrap)
            good = file_chunks(files)
            # interleave: a burst of bad messages after every good chunk, keyed like the good streams
            per = -(-N_BAD // 10)

            def mixed():
                it = iter(bad)
                for j, chunk in enumerate(good):
                    if j % 3 == 0:
                        for topic, key, value, headers in [x for _, x in zip(range(per), it)]:
                            p.send(topic, key=key, value=value, headers=headers)
                    yield chunk
                for topic, key, value, headers in it:
                    p.send(topic, key=key, value=value, headers=headers)

            publish_audio(p, "machine-audio", mixed(), start_ts_ns=0)
            p.close()
            dead = consume_all(broker.bootstrap, "machine-dead-letter", expect=N_BAD, timeout=60)
            wait_for(lambda: set(ref_windows) <= set(windows_by_key(read_jsonl(windows_path))), timeout=60,
                     what="the good streams to be scored")
            assert worker.poll() is None, "the worker stopped"
        finally:
            assert stop(worker) == 0
    assert len(dead) == N_BAD
    seen = set()
    for m in dead:
        f = dead_letter_fields(m.headers)
        h = dict(m.headers)
        assert f["error"] == h["expect"].decode(), (f, h["expect"])
        assert f["source_topic"] in ("machine-audio", "machine-sensors")
        assert int(f["source_offset"]) >= 0 and int(f["source_partition"]) >= 0
        i = int(h["test_id"])
        topic, key, value, _ = bad[i]
        assert (m.key, m.value or b"") == (key, value or b"") and f["source_topic"] == topic
        seen.add((f["source_topic"], f["source_partition"], f["source_offset"]))
    assert len(seen) == N_BAD  # one dead letter per source message, each with its own provenance
    got = read_jsonl(events_path)
    assert sorted((e["event_id"], e["status"]) for e in got) == sorted((e["event_id"], e["status"]) for e in ref_events)
    assert_scores_match(windows_by_key(read_jsonl(windows_path)), ref_windows)
    print(json.dumps({"dead_letters": len(dead), "good_events": len(got)}))
