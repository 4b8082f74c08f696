"""Readiness says the truth: a worker with no partition is not ready, and no worker is ready
while the broker is gone; live stays true as long as the loop comes round."""
from __future__ import annotations

import re
import urllib.request

import pytest

from monitor.kafka.broker import Broker, create_topics, free_port

from .kafka_utils import http_status, start_worker, stop, wait_for, write_config

pytestmark = [pytest.mark.kafka, pytest.mark.wallclock]


def _gauge(port: int, name: str) -> float | None:
    try:
        text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    except OSError:
        return None
    m = re.search(rf"^{name} (\S+)$", text, re.M)
    return float(m.group(1)) if m else None


def test_ready_needs_partitions_and_a_reachable_broker(trained_model, tmp_path, monkeypatch):
    # one partition, two workers: one of them has nothing to do and must say so
    monkeypatch.setenv("MONITOR__KAFKA__AUDIO_TOPIC", "solo-audio")
    monkeypatch.setenv("MONITOR__KAFKA__SENSOR_TOPIC", "")
    health = free_port()
    ports = [health, health + 1]
    ready = lambda p: http_status(f"http://127.0.0.1:{p}/healthz/ready")  # noqa: E731
    live = lambda p: http_status(f"http://127.0.0.1:{p}/healthz/live")  # noqa: E731
    broker = Broker().start()
    try:
        create_topics(broker.bootstrap, {"solo-audio": 1, "machine-events": 1, "machine-dead-letter": 1})
        cfg = write_config(tmp_path / "cfg.yaml", bootstrap=broker.bootstrap, routes=[("*", trained_model)],
                           events=tmp_path / "events.jsonl", health_port=health)
        worker = start_worker(cfg, log=tmp_path / "w.log", workers=2)
        try:
            wait_for(lambda: sorted(ready(p) or 0 for p in ports) == [200, 503], timeout=90, every=0.5,
                     what="one worker ready (the partition's owner) and one not (nothing assigned)")
            idle = next(p for p in ports if ready(p) == 503)
            assert _gauge(idle, "monitor_assigned_partitions") == 0 and _gauge(idle, "monitor_broker_reachable") == 1
            assert all(live(p) == 200 for p in ports)
            broker.stop()
            wait_for(lambda: all(ready(p) == 503 for p in ports), timeout=30, every=0.5,
                     what="both workers to turn not ready with the broker gone")
            assert all(live(p) == 200 for p in ports), "the loop keeps coming round without a broker"
            assert all(_gauge(p, "monitor_broker_reachable") == 0 for p in ports)
            assert all(_gauge(p, "monitor_ready") == 0 for p in ports)
            assert worker.poll() is None
        finally:
            assert stop(worker, timeout=60) == 0
    finally:
        broker.stop()
