"""``monitor broker``: the embedded broker in the foreground, with the topics asked for, until
Ctrl-C or SIGTERM (what the README's "try the service" steps start)."""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from monitor.kafka.broker import free_port

pytestmark = pytest.mark.kafka

ROOT = Path(__file__).resolve().parents[3]


@pytest.mark.parametrize("stop", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_broker_creates_the_topics_serves_them_and_stops_cleanly(tmp_path, stop):
    from kafka import KafkaConsumer, KafkaProducer, TopicPartition

    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "monitor", "broker", "--port", str(port),
                             "--topic", "machine-audio:3", "--topic", "machine-events"],
                            cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)}, stdout=subprocess.PIPE,
                            stderr=open(tmp_path / "broker.log", "w"), text=True)
    try:
        line = proc.stdout.readline()
        assert line.startswith(f"broker on 127.0.0.1:{port} ") and "machine-audio:3, machine-events:1" in line, line
        bootstrap = f"127.0.0.1:{port}"
        c = KafkaConsumer(bootstrap_servers=bootstrap, consumer_timeout_ms=5000, enable_auto_commit=False)
        assert c.partitions_for_topic("machine-audio") == {0, 1, 2}
        p = KafkaProducer(bootstrap_servers=bootstrap)
        p.send("machine-events", key=b"line3/pump-02", value=b'{"status":"open"}').get(timeout=10)
        p.close()
        tp = TopicPartition("machine-events", 0)
        c.assign([tp])
        c.seek_to_beginning(tp)
        assert [(m.key, m.value) for m in c] == [(b"line3/pump-02", b'{"status":"open"}')]
        c.close()
        proc.send_signal(stop)
        assert proc.wait(timeout=30) == 0, (tmp_path / "broker.log").read_text()[-2000:]
        with pytest.raises(OSError), socket.create_connection(("127.0.0.1", port), timeout=2):
            pass
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
