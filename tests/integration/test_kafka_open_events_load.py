"""300 real-time streams, each with an event open from its first seconds to the end of the run.

Without checkpointed state every partition's commit stayed at its oldest open event's start,
so nothing was committed in a whole load run and a restart would have replayed all of it. Here
the committed offsets must follow the scored windows throughout (commit lag, read off the
broker as the chunk at each committed offset against the newest chunk sent: what was consumed
is committed within a few commit intervals, and the commit is back within them of the end once
the load stops), and a worker killed at the end and started again must re-read only that lag
and send no event's ``open`` a second time.
"""
from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
import uuid
from pathlib import Path

import pytest
import soundfile as sf

from monitor.kafka.broker import Broker, create_topics, free_port
from monitor.synth import inject_fault, machine_sound

from .kafka_utils import TOPICS, log_has, read_jsonl, start_worker, stop, wait_for, write_config

pytestmark = [pytest.mark.kafka, pytest.mark.wallclock]

STREAMS = 300
SECONDS = float(os.environ.get("MONITOR_TEST_LOAD_S", "120"))
CHUNK_S, COMMIT_MS = 0.1, 1000
#: commit lag allowed, in seconds of audio: the 1 s window still being filled, the micro-batch
#: wait, two commit intervals, and the broker's and the reader's own delays on 2 busy cores
MAX_LAG_S = 5.0
#: how far the commit may trail what is sent while 3,000 chunks a second arrive: the lag above
#: plus the worker falling behind for a while. Where the producer, the broker, the worker and
#: this test's probes share two cores, CI saw peaks of 9.0 and 9.1 s; once the load stops the
#: commit must be back within MAX_LAG_S of the end (checked apart).
MAX_BEHIND_S = 15.0

PRODUCER = """
import os, sys, time
import soundfile as sf
from pathlib import Path
from monitor.kafka.producer import OutChunk, producer_for, publish_audio
bootstrap, folder, streams, seconds, progress = sys.argv[1], Path(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4]), sys.argv[5]
clips = [sf.read(p, dtype="float32")[0] for p in sorted(folder.glob("*.wav"))]
step = 1600
n = int(seconds * 16000) // step
def chunks():
    for k in range(n):
        for s in range(streams):
            x = clips[s % len(clips)]
            a = (k * step) % len(x)
            yield OutChunk(f"load/m-{s:03d}", x[a:a + step], 16000, k * step)
        with open(progress + ".tmp", "w") as f:
            f.write(str(k))
        os.replace(progress + ".tmp", progress)
p = producer_for(bootstrap)
publish_audio(p, "machine-audio", chunks(), start_ts_ns=0, realtime=True)
p.close()
"""


def _metrics(port: int) -> str:
    try:
        return urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    except OSError:
        return ""


def _chunk_at_commit(bootstrap: str, group: str) -> dict[int, int | None]:
    """Per partition: the seq of the chunk at the committed offset (None: nothing left to read,
    -1: nothing committed yet)."""
    from kafka import KafkaConsumer, TopicPartition

    g = KafkaConsumer(bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False)
    r = KafkaConsumer(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False,
                      max_poll_records=1, fetch_max_bytes=65536)
    out: dict[int, int | None] = {}
    try:
        for p in range(TOPICS["machine-audio"]):
            tp = TopicPartition("machine-audio", p)
            off = g.committed(tp)
            if off is None:
                out[p] = -1
                continue
            r.assign([tp])
            r.seek(tp, off)
            got = r.poll(timeout_ms=2000).get(tp) or []
            out[p] = int(dict(got[0].headers)["seq"]) if got else None
    finally:
        g.close()
        r.close()
    return out


@pytest.fixture(scope="module")
def faulty_clips(tmp_path_factory):
    """Six 10 s machines, each faulty from its first half second on (looped by the producer)."""
    folder = tmp_path_factory.mktemp("load-clips")
    for i in range(6):
        x = machine_sound(seconds=10.0, f0=110.0, seed=900 + i)
        x = inject_fault(x, kind="harmonic", start_s=0.0, end_s=11.0, seed=i)
        sf.write(folder / f"m-{i}.wav", x, 16000, subtype="PCM_16")
    return folder


def test_open_events_do_not_hold_commits(faulty_clips, trained_model, tmp_path, monkeypatch):
    monkeypatch.setenv("MONITOR__SERVICE__STREAM_IDLE_S", "8")  # at the end every stream goes quiet
    health, group = free_port(), f"load-{uuid.uuid4().hex[:8]}"
    events_path, log = tmp_path / "events.jsonl", tmp_path / "w1.log"
    progress = tmp_path / "sent"
    script = tmp_path / "produce.py"
    script.write_text(PRODUCER)
    samples = []
    with Broker() as broker:
        create_topics(broker.bootstrap, TOPICS)
        cfg = write_config(tmp_path / "cfg.yaml", bootstrap=broker.bootstrap, routes=[("load/*", trained_model)],
                           events=events_path, health_port=health, group=group)
        cfg.write_text(cfg.read_text().replace("commit_interval_ms: 300", f"commit_interval_ms: {COMMIT_MS}"))
        worker = start_worker(cfg, log=log)
        try:
            wait_for(lambda: log_has(log, "partitions assigned"), timeout=60, what="the worker to join")
            prod = subprocess.Popen([sys.executable, str(script), broker.bootstrap, str(faulty_clips), str(STREAMS),
                                     str(SECONDS), str(progress)], cwd=Path(__file__).resolve().parents[2])
            t0 = time.monotonic()
            while prod.poll() is None:
                time.sleep(5.0)
                sent = int(progress.read_text()) if progress.exists() else -1
                at = _chunk_at_commit(broker.bootstrap, group)
                text = _metrics(health)
                # consumed but not committed, per partition: commit lag minus fetch lag (both
                # from the same high watermark, so its error cancels)
                held = {p: c - f for (p, c), f in zip(_per_partition(text, "monitor_commit_lag").items(),
                                                      _per_partition(text, "monitor_consumer_lag").values())}
                samples.append({"t": round(time.monotonic() - t0, 1), "sent": sent, "at_commit": at,
                                "held_messages": held})
            assert prod.returncode == 0
            sent = int(progress.read_text())
            time.sleep(2 * COMMIT_MS / 1000)
            at_end = _chunk_at_commit(broker.bootstrap, group)
            opens = [e for e in read_jsonl(events_path) if e["kind"] == "machine" and e["status"] == "open"]
            consumed_1 = _metric_sum(_metrics(health), "monitor_messages_total")
            worker.send_signal(signal.SIGKILL)
            worker.wait(15)
        finally:
            if worker.poll() is None:
                worker.kill()
        second = start_worker(cfg, log=tmp_path / "w2.log")
        try:
            wait_for(lambda: log_has(tmp_path / "w2.log", "taken over from"), timeout=60, what="the take-over")
            # every stream is quiet now: each is finished after stream_idle_s, its event closed
            wait_for(lambda: sum(e["kind"] == "stream-idle" for e in read_jsonl(events_path)) >= STREAMS,
                     timeout=90, what="every stream to be finished as quiet")
            reread = _metric_sum(_metrics(health), "monitor_messages_total")
        finally:
            assert stop(second) == 0
    lags = [(s["t"], p, (s["sent"] - seq) * CHUNK_S) for s in samples if s["t"] >= 15
            for p, seq in s["at_commit"].items() if seq is not None]
    per_partition_s = STREAMS / TOPICS["machine-audio"] / CHUNK_S  # messages a second
    held = [(s["t"], p, n / per_partition_s) for s in samples if s["t"] >= 15 for p, n in s["held_messages"].items()]
    print(json.dumps({"streams": STREAMS, "seconds": SECONDS, "samples": len(samples),
                      "max_commit_lag_s": max((x[2] for x in lags), default=None),
                      "max_consumed_not_committed_s": max((x[2] for x in held), default=None),
                      "chunks_sent": sent, "at_commit_end": at_end, "messages_first": consumed_1,
                      "messages_reread": reread, "opens": len(opens)}))
    assert len({e["stream"] for e in opens}) == STREAMS, "every stream opens its event"
    assert lags and all(seq != -1 for s in samples[3:] for seq in s["at_commit"].values()), samples[:5]
    # what was consumed is committed within a few intervals (the checkpoint rule) ...
    assert held and max(x[2] for x in held) <= MAX_LAG_S, [x for x in held if x[2] > MAX_LAG_S][:10]
    # ... and the worker keeps up, so the commit follows what is sent ...
    assert max(x[2] for x in lags) <= MAX_BEHIND_S, [x for x in lags if x[2] > MAX_BEHIND_S][:10]
    # ... and catches up once the load stops
    assert all(seq is None or (sent - seq) * CHUNK_S <= MAX_LAG_S for seq in at_end.values()), (sent, at_end)
    # the restart re-read only the chunks after the commit: at most MAX_LAG_S of every stream
    assert reread <= STREAMS * MAX_LAG_S / CHUNK_S, (reread, consumed_1)
    events = read_jsonl(events_path)
    machine = [e for e in events if e["kind"] == "machine"]
    by_stream = {}
    for e in machine:
        by_stream.setdefault(e["stream"], []).append((e["status"], e.get("closed_by")))
    # one `open` per stream, across the kill: the second worker took the open events over
    taken = re.search(r'"msg": "(\d+) stream\(s\) taken over', (tmp_path / "w2.log").read_text())
    assert taken and int(taken.group(1)) == STREAMS, taken
    assert all(v == [("open", None), ("closed", "stream-idle")] for v in by_stream.values()), \
        {k: v for k, v in by_stream.items() if v != [("open", None), ("closed", "stream-idle")]}


def _per_partition(text: str, name: str) -> dict[str, float]:
    """The audio topic's per-partition values of a gauge."""
    out = {}
    for labels, v in re.findall(rf"^{name}{{([^}}]*)}} (\S+)$", text, re.M):
        kv = dict(re.findall(r'(\w+)="([^"]*)"', labels))
        if kv.get("topic") == "machine-audio":
            out[kv["partition"]] = float(v)
    return dict(sorted(out.items()))


def _metric_sum(text: str, name: str) -> float:
    return sum(float(v) for v in re.findall(rf"^{name}(?:{{[^}}]*}})? (\S+)$", text, re.M))
