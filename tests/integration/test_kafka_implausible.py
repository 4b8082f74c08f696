"""Messages that lie: well-formed but implausible chunks go to the dead-letter topic with their
own error codes (and a counter says how many); the good streams' events are unchanged."""
from __future__ import annotations

import json
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest

from monitor.kafka.broker import Broker, create_topics, free_port
from monitor.kafka.producer import file_chunks, producer_for, publish_audio
from monitor.sinks.dead_letter import dead_letter_fields
from monitor.sources.kafka_audio import audio_headers, encode_audio

from .kafka_utils import (TOPICS, assert_scores_match, consume_all, read_jsonl, replay_reference,
                          start_worker, stop, wait_for, windows_by_key, write_config)

pytestmark = pytest.mark.kafka

YEAR_NS = 365 * 86400 * 10**9


def _liars(stream: str) -> list[tuple[str, bytes, bytes, list, str]]:
    """(topic, key, value, headers, expected code): keyed like a good stream, so a lie that got
    through would disturb that stream's grid or score."""
    rng = np.random.default_rng(5)
    huge = encode_audio(rng.uniform(-0.5, 0.5, (5 << 20) // 2).astype(np.float32))  # 5 MiB = 164 s
    small = encode_audio(rng.uniform(-0.1, 0.1, 1600).astype(np.float32))
    ahead = time.time_ns() + YEAR_NS
    sensor = json.dumps({"ts": ahead, "values": {"t": 1.0}}).encode()
    return [
        ("machine-audio", stream.encode(), huge, audio_headers(sample_rate=16000, ts_ns=0, seq=1), "oversized-chunk"),
        ("machine-audio", stream.encode(), small, audio_headers(sample_rate=16000, ts_ns=ahead, seq=2),
         "ts-ahead-of-message"),
        ("machine-sensors", b"rig/1", sensor, [], "ts-ahead-of-message"),
    ]


def _metric(text: str, name: str, **labels: str) -> float:
    want = ",".join(f'{k}="{v}"' for k, v in labels.items())
    for line in text.splitlines():
        if line.startswith(f"{name}{{{want}}} "):
            return float(line.split()[-1])
    return 0.0


def test_oversized_and_future_chunks_are_dead_lettered(factory, trained_model, tmp_path):
    folder = factory["test"]
    ref_events, ref_windows = replay_reference(trained_model, folder)
    files = sorted(Path(folder).glob("*.wav"))
    liars = _liars(files[0].stem)
    health = free_port()
    events_path, windows_path = tmp_path / "events.jsonl", tmp_path / "windows.jsonl"
    with Broker() as broker:
        create_topics(broker.bootstrap, TOPICS)
        cfg = write_config(tmp_path / "cfg.yaml", bootstrap=broker.bootstrap, events=events_path,
                           windows=windows_path, health_port=health,
                           routes=[("normal_*", trained_model), ("anomaly_*", trained_model)])
        worker = start_worker(cfg, log=tmp_path / "w.log")
        try:
            p = producer_for(broker.bootstrap)

            def mixed():
                for j, chunk in enumerate(file_chunks(files)):
                    if j == 20:  # in the middle of the good streams
                        for topic, key, value, headers, code in liars:
                            p.send(topic, key=key, value=value, headers=list(headers) + [("expect", code.encode())])
                    yield chunk

            publish_audio(p, "machine-audio", mixed(), start_ts_ns=0)
            p.close()
            dead = consume_all(broker.bootstrap, "machine-dead-letter", expect=len(liars), timeout=90)
            wait_for(lambda: set(ref_windows) <= set(windows_by_key(read_jsonl(windows_path))), timeout=90,
                     what="the good streams to be scored")
            metrics = urllib.request.urlopen(f"http://127.0.0.1:{health}/metrics", timeout=5).read().decode()
            assert worker.poll() is None, "the worker stopped"
        finally:
            assert stop(worker) == 0
    codes = sorted(dead_letter_fields(m.headers)["error"] for m in dead)
    assert codes == sorted(c for *_, c in liars), codes
    for m in dead:
        f = dead_letter_fields(m.headers)
        assert f["error"] == dict(m.headers)["expect"].decode() and f["error_detail"]
        assert f["source_topic"] in ("machine-audio", "machine-sensors") and int(f["source_offset"]) >= 0
    big = next(m for m in dead if dead_letter_fields(m.headers)["error"] == "oversized-chunk")
    # too big for a Kafka message by default: left out, its size and provenance kept
    assert not big.value and dead_letter_fields(big.headers)["value_omitted_bytes"] == str(5 << 20)
    assert _metric(metrics, "monitor_dead_letters_total", error="oversized-chunk") == 1
    assert _metric(metrics, "monitor_dead_letters_total", error="ts-ahead-of-message") == 2
    got = read_jsonl(events_path)
    assert sorted((e["event_id"], e["status"]) for e in got) == sorted((e["event_id"], e["status"]) for e in ref_events)
    assert_scores_match(windows_by_key(read_jsonl(windows_path)), ref_windows)
    print(json.dumps({"dead_letters": codes, "good_events": len(got)}))
