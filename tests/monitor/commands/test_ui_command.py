"""``monitor ui`` as a user starts it: it prints its URL, guards it with the token, shows the
events of the file it follows as they are appended, and stops cleanly on Ctrl-C and SIGTERM."""
from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from monitor.alerting import make_event

ROOT = Path(__file__).resolve().parents[3]


def _event(stream: str, start: int) -> dict:
    return make_event(status="open", kind="machine", stream=stream, machine="pump", scorer="ae",
                      model_version="v1", start_sample=start, end_sample=start + 16000, sample_rate=16000,
                      peak_score=9.0, threshold=3.0)


def _get(url: str, token: str | None):
    req = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"} if token else {})
    with urllib.request.urlopen(req, timeout=10) as r:
        return json.loads(r.read())


@pytest.mark.parametrize("stop", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_ui_serves_the_followed_events_behind_its_token_and_stops_cleanly(tmp_path, stop):
    cfg, events = tmp_path / "c.yaml", tmp_path / "events.jsonl"
    cfg.write_text("health:\n  port: 0\n")
    events.write_text(json.dumps(_event("line3/pump-01", 0)) + "\n")
    proc = subprocess.Popen([sys.executable, "-m", "monitor", "ui", "--config", str(cfg), "--port", "0",
                             "--events-file", str(events), "--token", "s3cret"],
                            cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)}, stdout=subprocess.PIPE,
                            stderr=open(tmp_path / "ui.log", "w"), text=True)
    try:
        line = proc.stdout.readline()
        m = re.search(r"web view on (http://127\.0\.0\.1:\d+/)", line)
        assert m, line
        url = m.group(1)
        with pytest.raises(urllib.error.HTTPError) as refused:
            _get(url + "api/events", None)
        assert refused.value.code == 401
        deadline = time.monotonic() + 30
        while {e["stream"] for e in _get(url + "api/events", "s3cret")} != {"line3/pump-01"}:
            assert time.monotonic() < deadline, "the first event never showed"
            time.sleep(0.2)
        with events.open("a") as f:
            f.write(json.dumps(_event("line3/fan-01", 32000)) + "\n")
        while len(_get(url + "api/events", "s3cret")) < 2:
            assert time.monotonic() < deadline, "the appended event never showed"
            time.sleep(0.2)
        proc.send_signal(stop)
        assert proc.wait(timeout=30) == 0, (tmp_path / "ui.log").read_text()[-2000:]
        with pytest.raises(OSError):
            urllib.request.urlopen(url, timeout=5)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
