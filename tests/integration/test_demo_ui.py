"""``monitor demo`` as the README tells a user to run it, with the web view (``--ui``): the demo
prints the web view's URL, the overview shows every demo stream and its events while the run
is live, both injected faults are caught, every event the service wrote is on the events topic
(read back by the demo), the timeline is drawn, and the page stays up after the run until
Ctrl-C. The real demo: embedded broker, training, the service, real-time streams with faults;
the view is read over HTTP, and in headless Chromium where it is installed. (One demo run for
both: it costs minutes.)
"""
from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.request

import pytest

from monitor.commands.demo import SENSOR_STREAM, STREAMS

from .kafka_utils import ROOT, read_jsonl, wait_for
from .webdriver import Browser, find_browser

pytestmark = [pytest.mark.kafka, pytest.mark.slow, pytest.mark.wallclock]

DEMO_STREAMS = {s for s, *_ in STREAMS} | {SENSOR_STREAM}
FAULTY = {s for s, _, kind, *_ in STREAMS if kind}


def _json(url: str):
    with urllib.request.urlopen(url, timeout=10) as r:
        return json.loads(r.read())


def test_demo_ui_shows_every_stream_and_its_events_live_and_holds_until_ctrl_c(tmp_path):
    out = tmp_path / "demo"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PYTHONUNBUFFERED": "1"}
    demo = subprocess.Popen([sys.executable, "-m", "monitor", "demo", "--ui", "--ui-port", "0", "--out", str(out),
                             "--device", "cpu"], cwd=ROOT, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(iter(demo.stdout.readline, "")), daemon=True)
    reader.start()
    try:
        found = wait_for(lambda: next((m for x in list(lines) if (m := re.search(r"web view: (http://\S+/)", x))),
                                      None), timeout=600, what="the demo to print the web view's URL")
        url = found.group(1)
        assert url.startswith("http://127.0.0.1:")  # loopback: labelling is on and no token is set
        # while the run is live: what the overview and the events list show, polled as a page does
        seen_streams: set[str] = set()
        seen_events: dict[str, dict] = {}
        over = lambda: any("the run is over" in x for x in list(lines))  # noqa: E731
        deadline = time.monotonic() + 600
        while not over():
            assert demo.poll() is None, "".join(lines)[-3000:]
            assert time.monotonic() < deadline, "the demo's run did not end within 10 min"
            ov = _json(url + "api/overview?per_page=200")
            seen_streams |= {r["stream"] for r in ov["streams"]}
            seen_events.update({e["event_id"]: e for e in _json(url + "api/events?limit=500")})
            time.sleep(1.0)
        live_machine = {e["stream"] for e in seen_events.values() if e["kind"] == "machine"}
        assert FAULTY <= live_machine, f"events shown live: {sorted(live_machine)}"
        assert seen_streams == DEMO_STREAMS, sorted(seen_streams)
        held = next(x for x in lines if "the run is over" in x)
        assert url in held and "Ctrl-C" in held
        # after the run the page is still up and shows everything the service emitted
        time.sleep(3)
        assert demo.poll() is None, "the demo did not hold the web view"
        ov = _json(url + "api/overview?per_page=200")
        assert {r["stream"] for r in ov["streams"]} == DEMO_STREAMS
        emitted = {e["event_id"] for e in read_jsonl(out / "events.jsonl") if e["kind"] == "machine"}
        shown = {e["event_id"] for e in _json(url + "api/events?limit=500")}
        assert emitted and emitted == shown
        with urllib.request.urlopen(url, timeout=10) as r:
            assert r.status == 200 and b'data-page="overview"' in r.read()
        browser = find_browser()
        if not isinstance(browser, str):  # and in a real browser: every demo stream is a row
            b = Browser(*browser)
            try:
                b.get(url)
                rows = wait_for(lambda: (r := b.run("return [...document.querySelectorAll('#streams tbody tr')]"
                                                    ".map(r => r.dataset.stream)")) and len(r) == len(DEMO_STREAMS)
                                and r, timeout=30, what="the overview's rows in Chromium")
                assert set(rows) == DEMO_STREAMS
                # the events list is filled by the page's second fetch, after the rows
                links = wait_for(lambda: FAULTY <= (got := set(b.run(
                    "return [...document.querySelectorAll('a.event-link')].map(a => a.dataset.stream)"))) and got,
                    timeout=30, what="the events list's links in Chromium")
                assert FAULTY <= set(links)
            finally:
                b.close()
        demo.send_signal(signal.SIGINT)  # Ctrl-C
        assert demo.wait(timeout=60) == 0, "".join(lines)[-3000:]
        reader.join(10)
        assert any("stopping the web view" in x for x in lines)
        # after Ctrl-C, the run's own account: every event it wrote read back from the events topic, the plot
        m = next((m for x in list(lines) if (m := re.search(
            r"(\d+) events \((\d+) opened\) on \d+ streams; (\d+) events read back from machine-events", x))),
            None)
        assert m, "".join(lines)[-3000:]
        written = [e for e in read_jsonl(out / "events.jsonl")]
        assert int(m.group(1)) == len(written) == int(m.group(3)) > 0
        assert (out / "timeline.png").stat().st_size > 10_000
        with pytest.raises(OSError):
            urllib.request.urlopen(url, timeout=5)
    finally:
        if demo.poll() is None:
            demo.kill()
            demo.wait()
