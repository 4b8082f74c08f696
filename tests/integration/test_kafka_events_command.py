"""``monitor events`` reads the events topic back: readable lines or JSON, filtered by stream glob,
kind and publish time, and ``--follow`` prints events published after it started."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time

import pytest

from monitor.kafka.broker import Broker, create_topics
from monitor.sinks.kafka import make_producer

from .kafka_utils import ROOT, TOPICS, wait_for

pytestmark = [pytest.mark.kafka, pytest.mark.wallclock]


def _event(stream: str, kind: str, i: int) -> dict:
    return {"schema": "anomaly-event/1", "event_id": f"e{i}", "status": "open", "stream": stream,
            "machine": "pump", "scorer": "ae", "model_version": "v1", "start": 10.0 + i, "end": 11.0 + i,
            "peak_score": 80.0, "threshold": 50.0, "severity": 0.6, "windows": 3, "kind": kind,
            "explanation": {"top_features": [{"name": "mel 12"}]}, "detail": "no chunks for 2.0 s"}


def _monitor(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "monitor", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=60, env={**os.environ, "PYTHONPATH": str(ROOT)})


def test_events_command_prints_filters_and_follows(tmp_path):
    with Broker() as broker:
        create_topics(broker.bootstrap, TOPICS)
        p = make_producer(broker.bootstrap.split(","))
        sent = [_event("line3/pump-01", "machine", 0), _event("line3/pump-02", "gap", 1),
                _event("line4/fan-01", "machine", 2)]
        for e in sent:
            p.send("machine-events", key=e["stream"].encode(), value=json.dumps(e).encode())
        p.send("machine-events", key=b"x", value=b"not json")
        p.flush()
        cfg = tmp_path / "c.yaml"
        cfg.write_text(f'kafka:\n  bootstrap: "{broker.bootstrap}"\nmodels:\n  - model: m\n')

        r = _monitor("events", "--config", str(cfg), "--json")
        assert r.returncode == 0, r.stderr
        assert [json.loads(x)["event_id"] for x in r.stdout.splitlines()] == ["e0", "e1", "e2"]
        assert "1 messages that are not JSON events skipped" in r.stderr

        r = _monitor("events", "--bootstrap", broker.bootstrap, "--stream", "line3/*", "--kind", "machine")
        lines = r.stdout.splitlines()
        assert r.returncode == 0 and len(lines) == 1, r.stdout + r.stderr
        assert "line3/pump-01" in lines[0] and "peak=80" in lines[0] and "id=e0" in lines[0]

        r = _monitor("events", "--config", str(cfg), "--since", "2099-01-01T00:00")
        assert r.returncode == 0 and r.stdout == "" and "# 0 events" in r.stderr
        r = _monitor("events", "--config", str(cfg), "--since", "10m", "--kind", "gap")
        lines = r.stdout.splitlines()
        assert len(lines) == 1 and "line3/pump-02  gap" in lines[0] and "no chunks for 2.0 s" in lines[0]

        follower = subprocess.Popen([sys.executable, "-m", "monitor", "events", "--config", str(cfg), "--follow",
                                     "--json", "--stream", "late/*"], cwd=ROOT, stdout=subprocess.PIPE,
                                    stderr=subprocess.DEVNULL, text=True,
                                    env={**os.environ, "PYTHONPATH": str(ROOT)})
        got: list[str] = []  # read in a thread: a bare readline() would block past any timeout
        threading.Thread(target=lambda: [got.append(x) for x in follower.stdout], daemon=True).start()
        try:
            time.sleep(6.0)  # it has read the topic to its end and is waiting
            late = _event("late/pump-09", "machine", 9)
            p.send("machine-events", key=b"late/pump-09", value=json.dumps(late).encode())
            p.flush()
            wait_for(lambda: got, timeout=60, what="the followed event")
            assert json.loads(got[0])["event_id"] == "e9"
        finally:
            follower.terminate()
            follower.wait(10)
            p.close()


def test_events_command_names_an_unreachable_broker():
    from monitor.kafka.broker import free_port

    t0 = time.monotonic()
    r = _monitor("events", "--bootstrap", f"127.0.0.1:{free_port()}")
    assert r.returncode == 69 and "connection refused" in r.stderr and len(r.stderr.strip().splitlines()) == 1
    assert time.monotonic() - t0 < 30
