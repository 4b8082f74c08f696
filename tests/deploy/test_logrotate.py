"""deploy/logrotate.conf with the real logrotate against a process writing the way the service
does (``monitor.sinks.reopen``): after rotation and SIGHUP, new lines go to a new file at the
same path and none is lost (issue 19, item 5)."""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

WRITER = """
import signal, sys, time
from monitor.sinks.jsonl import JsonlSink
from monitor.sinks.reopen import ReopenRequest
stop = []
signal.signal(signal.SIGTERM, lambda *_: stop.append(1))
hup = ReopenRequest(); hup.install()
sink = JsonlSink(sys.argv[1])
n = 0
while not stop:
    sink.write({"seq": n}); n += 1
    if n % 20 == 0:
        sink.flush()
    if hup.take():
        sink.reopen()
        print("reopened", flush=True)
    time.sleep(0.002)
sink.close()
"""


def test_logrotate_then_sighup_moves_writing_to_a_new_file(tmp_path):
    if not shutil.which("logrotate"):
        pytest.skip("logrotate is not installed here (Debian: apt-get install logrotate)")
    events = tmp_path / "events.jsonl"
    proc = subprocess.Popen([sys.executable, "-c", WRITER, str(events)], stdout=subprocess.PIPE,
                            text=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
    try:
        deadline = time.monotonic() + 60
        while (not events.exists() or events.stat().st_size < 1000) and time.monotonic() < deadline:
            time.sleep(0.1)
        conf = (ROOT / "deploy" / "logrotate.conf").read_text()
        conf = conf.replace("/var/lib/machine-monitor/events.jsonl /var/lib/machine-monitor/windows.jsonl",
                            str(events))
        conf = conf.replace("su monitor monitor", "su root root")
        conf = conf.replace("systemctl reload machine-monitor.service", f"kill -HUP {proc.pid}")
        assert f"kill -HUP {proc.pid}" in conf and str(events) in conf
        (tmp_path / "rotate.conf").write_text(conf)
        r = subprocess.run(["logrotate", "-f", "-s", str(tmp_path / "state"), str(tmp_path / "rotate.conf")],
                           capture_output=True, text=True, timeout=60)
        assert r.returncode == 0, r.stderr
        assert proc.stdout.readline().strip() == "reopened"
        time.sleep(0.5)
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0
    rotated = tmp_path / "events.jsonl.1"  # delaycompress: the newest rotated file stays plain
    import json

    old = [json.loads(x)["seq"] for x in rotated.read_text().splitlines()]
    new = [json.loads(x)["seq"] for x in events.read_text().splitlines()]
    assert old and new
    assert old + new == list(range(len(old) + len(new)))  # nothing lost, nothing twice
