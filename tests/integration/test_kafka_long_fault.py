"""A fault that outlasts the run: commits follow the scored windows, and a restart takes the
streams over from the state topic instead of replaying the fault.

One pump's fault starts 1.5 s in and never ends; three more pumps run normal. All four share
one partition, so its commit is the minimum over them: without checkpointed state it stayed at
the open event's start for the whole run. The worker is stopped mid-run (kill -9, or SIGTERM)
and a second one finishes the streams; reference = ``monitor replay`` of the same audio.
"""
from __future__ import annotations

import signal
import threading
import time
import uuid
from pathlib import Path

import pytest
import soundfile as sf

from monitor.kafka.broker import Broker, create_topics
from monitor.kafka.producer import producer_for, ts_for
from monitor.sources.kafka_audio import audio_headers, encode_audio
from monitor.synth import inject_fault, machine_sound

from .kafka_utils import (assert_scores_match, log_has, read_jsonl, replay_reference, start_worker, stop,
                          wait_for, windows_by_key, write_config)

pytestmark = pytest.mark.kafka

SECONDS, CHUNK = 16.0, 1600
TOPICS = {"machine-audio": 1, "machine-sensors": 1, "machine-events": 1, "machine-dead-letter": 1}


@pytest.fixture(scope="module")
def streams(tmp_path_factory, trained_model):
    folder = tmp_path_factory.mktemp("long-fault")
    for i in range(4):
        x = machine_sound(seconds=SECONDS, f0=110.0, seed=700 + i)
        if i == 0:
            x = inject_fault(x, kind="harmonic", start_s=1.5, end_s=SECONDS + 1, seed=1)
        sf.write(folder / f"pump-{i}.wav", x, 16000, subtype="PCM_16")
    events, windows = replay_reference(trained_model, folder)
    long = [e for e in events if e["stream"] == "pump-0" and e["kind"] == "machine"]
    assert [e["status"] for e in long] == ["open", "closed"] and long[1]["closed_by"] == "end-of-stream", long
    return folder, events, windows


class _Producer(threading.Thread):
    """The four streams at real-time pace; remembers where each chunk landed."""

    def __init__(self, bootstrap: str, folder: Path) -> None:
        super().__init__(daemon=True)
        self.bootstrap = bootstrap
        self.clips = {p.stem: sf.read(p, dtype="int16")[0] for p in sorted(folder.glob("*.wav"))}
        self.sent_seq = -1  # the newest chunk index sent, for every stream
        self.offsets: dict[int, tuple[str, int]] = {}  # partition 0 offset -> (stream, seq)

    def run(self) -> None:
        p = producer_for(self.bootstrap)
        n = len(next(iter(self.clips.values()))) // CHUNK
        t0 = time.monotonic()
        futures = []
        for k in range(n):
            for name, x in self.clips.items():
                pcm = x[k * CHUNK:(k + 1) * CHUNK]
                futures.append(((name, k), p.send(
                    "machine-audio", key=name.encode(), value=encode_audio(pcm.astype("float32") / 32768),
                    headers=audio_headers(sample_rate=16000, seq=k, ts_ns=ts_for(0, k * CHUNK, 16000),
                                          eos=k == n - 1))))
            self.sent_seq = k
            time.sleep(max(0.0, t0 + (k + 1) * CHUNK / 16000 - time.monotonic()))
        p.flush()
        for key, f in futures:
            self.offsets[f.get(timeout=30).offset] = key
        p.close()


def _committed(bootstrap: str, group: str) -> int | None:
    from kafka import KafkaConsumer, TopicPartition

    c = KafkaConsumer(bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False)
    try:
        return c.committed(TopicPartition("machine-audio", 0))
    finally:
        c.close()


# each client once (the take-over runs in each one's rebalance path): librdkafka killed, kafka-python stopped
@pytest.mark.parametrize("sig,client", [(signal.SIGKILL, "confluent"), (signal.SIGTERM, "kafka-python")],
                         ids=["kill-9", "sigterm"])
def test_long_fault_commits_follow_windows_and_restart_takes_over(streams, tmp_path, trained_model, sig, client):
    folder, ref_events, ref_windows = streams
    events_path, windows_path = tmp_path / "events.jsonl", tmp_path / "windows.jsonl"
    group = f"long-{uuid.uuid4().hex[:8]}"
    with Broker() as broker:
        create_topics(broker.bootstrap, TOPICS)
        cfg = write_config(tmp_path / "cfg.yaml", bootstrap=broker.bootstrap, routes=[("pump-*", trained_model)],
                           events=events_path, windows=windows_path, group=group, client=client)
        first = start_worker(cfg, log=tmp_path / "w1.log")
        wait_for(lambda: log_has(tmp_path / "w1.log", "partitions assigned"), timeout=60, what="the worker to join")
        producer = _Producer(broker.bootstrap, folder)
        producer.start()
        wait_for(lambda: any(e["stream"] == "pump-0" and e["status"] == "open" for e in read_jsonl(events_path)),
                 timeout=30, what="the long fault's event to open")
        time.sleep(5.0)  # 50 chunks later, the event still open
        committed = _committed(broker.bootstrap, group)
        sent = producer.sent_seq
        first.send_signal(sig)
        assert first.wait(15) == (0 if sig == signal.SIGTERM else -signal.SIGKILL)
        before = read_jsonl(events_path)
        second = start_worker(cfg, log=tmp_path / "w2.log")
        try:
            producer.join(SECONDS + 20)
            wait_for(lambda: {e["event_id"] for e in ref_events} <= {e["event_id"] for e in read_jsonl(events_path)}
                     and set(ref_windows) <= set(windows_by_key(read_jsonl(windows_path))),
                     timeout=90, what="the second worker to finish every stream")
        finally:
            assert stop(second) == 0
    # while the event was open the commit followed the windows: at most ~1.5 s of chunks behind
    # (the 1 s window, the commit interval, the micro-batch wait), not back at the event's start
    assert committed is not None
    stream, seq = producer.offsets.get(committed, ("(end)", len(producer.offsets) // 4))
    print(f"\n{sig.name}/{client}: committed offset {committed} = {stream} chunk {seq} with chunk {sent} sent")
    assert seq >= sent - 15, (stream, seq, sent)
    assert log_has(tmp_path / "w2.log", "taken over from")
    got = read_jsonl(events_path)
    assert {e["event_id"] for e in got} == {e["event_id"] for e in ref_events}
    assert_scores_match(windows_by_key(read_jsonl(windows_path)), ref_windows)
    # the long fault's `open` went out once; sent again are only records of the last interval
    opens = [e for e in got if e["stream"] == "pump-0" and e["kind"] == "machine" and e["status"] == "open"]
    assert len(opens) == 1, opens
    after = got[len(before):]
    again = [e for e in after if (e["event_id"], e["status"]) in {(b["event_id"], b["status"]) for b in before}]
    if sig == signal.SIGTERM:
        assert not again, again  # a clean stop checkpointed everything
    else:
        assert all(e["end"] >= (committed_start := (seq * CHUNK) / 16000) - 1.0 for e in again), (again, committed_start)
