"""``monitor demo`` as the README tells a user to run it: exit 0 only when both injected faults
were caught, every event the service wrote is on the events topic (read back by the demo), and
the timeline is drawn."""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import pytest

from monitor.commands.demo import STREAMS

from .kafka_utils import ROOT

pytestmark = [pytest.mark.kafka, pytest.mark.slow]


def test_demo_catches_both_faults_and_the_events_topic_holds_every_event(tmp_path):
    out = tmp_path / "demo"
    r = subprocess.run([sys.executable, "-m", "monitor", "demo", "--out", str(out), "--device", "cpu"],
                       cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)}, capture_output=True, text=True,
                       timeout=900)
    assert r.returncode == 0, (r.stdout + r.stderr)[-3000:]
    events = [json.loads(x) for x in (out / "events.jsonl").read_text().splitlines() if x.strip()]
    opened = {e["stream"] for e in events if e["status"] == "open" and e["kind"] == "machine"}
    assert {s for s, _, kind, *_ in STREAMS if kind} <= opened
    m = re.search(r"(\d+) events \((\d+) opened\) on \d+ streams; (\d+) events read back from machine-events",
                  r.stdout)
    assert m, r.stdout[-3000:]
    assert int(m.group(1)) == len(events) == int(m.group(3)) > 0
    assert (out / "timeline.png").stat().st_size > 10_000
