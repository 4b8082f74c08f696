"""Delivery over a real broker: crashes, SIGTERM, scale-out, a late broker, malformed input.

Reference = ``monitor replay`` of the same audio files. Each test produces synthetic pump
streams (with injected faults so there are events to lose) at real-time pace while service
processes (``monitor run``) consume them, and checks that every window was scored at least once
and that the set of event ids equals the reference.
"""
from __future__ import annotations

import signal
import threading
import time
from pathlib import Path

import pytest
import soundfile as sf

from monitor.kafka.broker import Broker, create_topics, free_port
from monitor.kafka.producer import producer_for, file_chunks, publish_audio
from monitor.synth import inject_fault, machine_sound

from .kafka_utils import (TOPICS, assert_scores_match, http_status, log_has, read_jsonl,
                          replay_reference, start_worker, stop, wait_for, windows_by_key, write_config)

pytestmark = pytest.mark.kafka

SECONDS = 8.0


@pytest.fixture(scope="module")
def streams(tmp_path_factory, trained_model):
    """Six 8 s pump streams, four with faults at different times; and their replay."""
    folder = tmp_path_factory.mktemp("delivery-streams")
    plan = [("clicks", 1.5, 4.0), ("harmonic", 3.0, 6.0), ("tone-bursts", 5.0, 7.5),
            ("level-step", 2.0, 3.5), (None, 0, 0), (None, 0, 0)]
    for i, (kind, a, b) in enumerate(plan):
        x = machine_sound(seconds=SECONDS, f0=110.0, seed=500 + i)
        if kind:
            x = inject_fault(x, kind=kind, start_s=a, end_s=b, seed=i)
        sf.write(folder / f"pump-{i}.wav", x, 16000, subtype="PCM_16")
    events, windows = replay_reference(trained_model, folder)
    assert events, "the reference replay raised no events: nothing to lose"
    return folder, events, windows


def _produce_in_background(bootstrap: str, folder: Path, *, realtime: bool = True) -> threading.Thread:
    def go():
        p = producer_for(bootstrap)
        publish_audio(p, "machine-audio", file_chunks(sorted(folder.glob("*.wav"))), start_ts_ns=0,
                      realtime=realtime)
        p.close()

    t = threading.Thread(target=go, daemon=True)
    t.start()
    return t


def _complete(events_path: Path, windows_path: Path, ref_events, ref_windows):
    def check():
        got_w = windows_by_key(read_jsonl(windows_path))
        got_ids = {e["event_id"] for e in read_jsonl(events_path)}
        return set(ref_windows) <= set(got_w) and {e["event_id"] for e in ref_events} <= got_ids
    return check


#: both consumers the worker can use (``kafka.client``): the delivery rules must hold for each
CLIENTS = pytest.mark.parametrize("client", ["kafka-python", "confluent"])


@CLIENTS
@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM], ids=["kill-9", "sigterm"])
def test_restart_mid_stream_loses_nothing(streams, trained_model, tmp_path, sig, client):
    folder, ref_events, ref_windows = streams
    events_path, windows_path, log = tmp_path / "events.jsonl", tmp_path / "windows.jsonl", tmp_path / "w.log"
    with Broker() as broker:
        create_topics(broker.bootstrap, TOPICS)
        cfg = write_config(tmp_path / "cfg.yaml", bootstrap=broker.bootstrap, routes=[("pump-*", trained_model)],
                           events=events_path, windows=windows_path, client=client)
        first = start_worker(cfg, log=log)
        wait_for(lambda: log_has(log, "partitions assigned"), timeout=40, what="the first worker to join")
        producer = _produce_in_background(broker.bootstrap, folder)
        time.sleep(SECONDS / 2)
        t0 = time.monotonic()
        first.send_signal(sig)
        rc = first.wait(15)
        stopped_in = time.monotonic() - t0
        if sig == signal.SIGTERM:
            assert rc == 0 and stopped_in < 10, (rc, stopped_in)
            assert log_has(log, "worker stopped")
            from kafka import KafkaConsumer, TopicPartition

            group = next(line.split()[-1] for line in cfg.read_text().splitlines() if "group_id" in line)
            c = KafkaConsumer(bootstrap_servers=broker.bootstrap, group_id=group, enable_auto_commit=False)
            committed = [c.committed(TopicPartition("machine-audio", p)) for p in range(4)]
            c.close()
            assert any(o for o in committed), f"nothing committed at SIGTERM: {committed}"
        before = {e["event_id"] for e in read_jsonl(events_path)}
        second = start_worker(cfg, log=tmp_path / "w2.log")
        try:
            producer.join(SECONDS + 10)
            wait_for(_complete(events_path, windows_path, ref_events, ref_windows), timeout=60,
                     what="the restarted worker to finish every stream")
            # the restart took the streams over from the state topic at the committed offsets,
            # not from the start of the streams
            assert log_has(tmp_path / "w2.log", "taken over from")
        finally:
            assert stop(second) == 0
    got = read_jsonl(events_path)
    print(f"\n{sig.name}: {len(before)} event ids before the stop, {len({e['event_id'] for e in got})} after "
          f"the restart; {len(got)} event records for {len(ref_events)} reference records")
    assert {e["event_id"] for e in got} == {e["event_id"] for e in ref_events}
    assert_scores_match(windows_by_key(read_jsonl(windows_path)), ref_windows)


@CLIENTS
def test_two_workers_one_killed_partitions_move(streams, trained_model, tmp_path, client):
    folder, ref_events, ref_windows = streams
    events_path, windows_path = tmp_path / "events.jsonl", tmp_path / "windows.jsonl"
    logs = [tmp_path / "a.log", tmp_path / "b.log"]
    with Broker() as broker:
        create_topics(broker.bootstrap, TOPICS)
        cfg = write_config(tmp_path / "cfg.yaml", bootstrap=broker.bootstrap, routes=[("pump-*", trained_model)],
                           events=events_path, windows=windows_path, client=client)
        workers = [start_worker(cfg, log=lg) for lg in logs]
        try:
            def both_assigned():
                return all(log_has(lg, "machine-audio[") for lg in logs)
            wait_for(both_assigned, timeout=40, what="both workers to get partitions")
            producer = _produce_in_background(broker.bootstrap, folder)
            time.sleep(SECONDS / 2)
            workers[0].kill()
            workers[0].wait(10)
            producer.join(SECONDS + 10)
            wait_for(_complete(events_path, windows_path, ref_events, ref_windows), timeout=60,
                     what="the surviving worker to take over and finish")
            survivor_log = logs[1].read_text()
            assert survivor_log.count("partitions assigned") >= 2  # it got the dead one's partitions
        finally:
            assert stop(workers[1]) == 0
    got = read_jsonl(events_path)
    assert {e["event_id"] for e in got} == {e["event_id"] for e in ref_events}
    assert_scores_match(windows_by_key(read_jsonl(windows_path)), ref_windows)


def test_worker_started_before_broker_waits_then_becomes_ready(streams, trained_model, tmp_path):
    folder, ref_events, ref_windows = streams
    port, health = free_port(), free_port()
    events_path, windows_path, log = tmp_path / "events.jsonl", tmp_path / "windows.jsonl", tmp_path / "w.log"
    cfg = write_config(tmp_path / "cfg.yaml", bootstrap=f"127.0.0.1:{port}", routes=[("pump-*", trained_model)],
                       events=events_path, windows=windows_path, health_port=health)
    worker = start_worker(cfg, log=log)
    try:
        wait_for(lambda: log_has(log, "waiting for Kafka"), timeout=30, what="a 'waiting for Kafka' log line")
        assert http_status(f"http://127.0.0.1:{health}/healthz/live") == 200
        assert http_status(f"http://127.0.0.1:{health}/healthz/ready") == 503
        time.sleep(2)
        assert worker.poll() is None
        with Broker(port=port) as broker:
            create_topics(broker.bootstrap, TOPICS)
            wait_for(lambda: http_status(f"http://127.0.0.1:{health}/healthz/ready") == 200, timeout=40,
                     what="the worker to become ready")
            _produce_in_background(broker.bootstrap, folder, realtime=False).join(30)
            wait_for(_complete(events_path, windows_path, ref_events, ref_windows), timeout=60,
                     what="the worker to score the streams")
            metrics = __import__("urllib.request").request.urlopen(
                f"http://127.0.0.1:{health}/metrics", timeout=2).read().decode()
            assert "monitor_windows_scored_total" in metrics and "monitor_chunk_to_score_seconds_bucket" in metrics
            assert 'monitor_stream_window_score{model="' in metrics and 'stream="pump-0"' in metrics
            assert stop(worker) == 0
    finally:
        if worker.poll() is None:
            worker.kill()
    assert {e["event_id"] for e in read_jsonl(events_path)} == {e["event_id"] for e in ref_events}


def test_service_hot_reloads_a_new_version_without_losing_a_window(streams, trained_model, tmp_path,
                                                                   monkeypatch):
    """A new version written to the model root while streams flow: the worker swaps it in
    without a restart; every window is scored exactly once, by one version or the other. The
    new version has the old weights under a new name, so every score must still equal the
    replay's; events after the swap carry the new version."""
    import json
    import shutil

    from models.artifacts import LATEST, set_latest

    folder, _, ref_windows = streams
    root = tmp_path / "pump"
    shutil.copytree(trained_model, root)
    v1 = (root / LATEST).read_text().strip()
    monkeypatch.setenv("MONITOR__SERVICE__MODEL_RELOAD_S", "0.2")
    monkeypatch.setenv("MONITOR__SINKS__EVENT_AUDIO", str(tmp_path / "event_audio"))
    events_path, windows_path, log = tmp_path / "events.jsonl", tmp_path / "windows.jsonl", tmp_path / "w.log"
    with Broker() as broker:
        create_topics(broker.bootstrap, TOPICS)
        cfg = write_config(tmp_path / "cfg.yaml", bootstrap=broker.bootstrap, routes=[("pump-*", root)],
                           events=events_path, windows=windows_path)
        worker = start_worker(cfg, log=log)
        try:
            wait_for(lambda: log_has(log, "partitions assigned"), timeout=40, what="the worker to join")
            producer = _produce_in_background(broker.bootstrap, folder)
            wait_for(lambda: len(read_jsonl(windows_path)) >= 30, timeout=30, what="windows under v1")
            v2 = "ae-hot-reload-v2"
            shutil.copytree(root / v1, root / v2)
            meta = json.loads((root / v2 / "meta.json").read_text())
            meta["model_version"] = v2
            (root / v2 / "meta.json").write_text(json.dumps(meta))
            set_latest(root, v2)
            producer.join(SECONDS + 10)
            want = {(s, i) for s, _, i in ref_windows}
            wait_for(lambda: want <= {(w["stream"], w["index"]) for w in read_jsonl(windows_path)},
                     timeout=60, what="every window scored")
            assert log_has(log, "model reloaded")
        finally:
            assert stop(worker) == 0
    windows = read_jsonl(windows_path)
    keys = [(w["stream"], w["index"]) for w in windows]
    assert len(keys) == len(set(keys)), "a window was scored twice"
    by_version = {v: sum(w["model_version"] == v for w in windows) for v in (v1, v2)}
    assert by_version[v1] and by_version[v2] and sum(by_version.values()) == len(windows), by_version
    # every window once, each score as the replay's, whichever version scored it
    assert_scores_match({(w["stream"], v1, w["index"]): w["score"] for w in windows}, ref_windows)
    events = read_jsonl(events_path)
    late = [e for e in events if e["model_version"] == v2]
    print(f"\nwindows under v1 / v2: {by_version[v1]} / {by_version[v2]}; events {len(events)}, "
          f"{len(late)} under v2, {sum(e.get('closed_by') == 'model-reload' for e in events)} closed by the reload")
    assert late, "no event under the new version (the streams' later faults)"
    # the service kept each machine event's audio for labelling (sinks.event_audio)
    from monitor.runtime.event_audio import find_event_audio

    closed = [e for e in events if e["kind"] == "machine" and e["status"] == "closed"]
    kept = {e["event_id"]: find_event_audio(tmp_path / "event_audio", e["event_id"]) for e in closed}
    assert closed and all(kept.values()), [k for k, v in kept.items() if not v]
    for e in closed:
        audio, sr = sf.read(kept[e["event_id"]][0], dtype="float32")
        assert sr == 16000 and len(audio) == e["end_sample"] - e["start_sample"]
