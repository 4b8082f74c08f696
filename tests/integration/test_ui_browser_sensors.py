"""A sensor event's page in a real browser: ``monitor replay`` of a sensor CSV with a fault
writes the events and each machine event's rows (``--event-store``, as the service does in
``sinks.event_audio``); the web view follows the events file and serves the store; headless
Chromium opens the overview, follows the fault's event and loads its channel traces and rows.
No broker: the service writing the same rows as the replay is checked in test_kafka_sensors.py.

Set ``MONITOR_UI_SCREENSHOTS=DIR`` to keep the page's screenshot there (docs/ui/ in the README).
"""
from __future__ import annotations

import json
import os
from pathlib import Path

from tests.integration.kafka_utils import read_jsonl, wait_for
from tests.integration.test_ui_browser import browser  # noqa: F401 - the fixture
from tests.monitor.runtime.test_sensors import CHANNELS, sensor_model, synth_rows, write_csv  # noqa: F401

T0 = 1_700_000_000.0


def test_sensor_event_page_shows_the_channels_in_the_browser(browser, sensor_model, tmp_path):  # noqa: F811
    from monitor.cli import main
    from monitor.config import load_config
    from monitor.ui.app import start_web_view
    from monitor.ui.server import UiOptions

    folder = sensor_model[0]
    rows = synth_rows(900, 5)
    rows[500:560, 1] += 1.2  # a pressure fault
    (tmp_path / "line3").mkdir()
    csv = tmp_path / "line3" / "press-01.csv"  # stream line3/press-01
    write_csv(csv, rows, jitter=0.2, seed=3)
    store, events = tmp_path / "event_audio", tmp_path / "events.jsonl"
    assert main(["replay", "--model", str(folder), "--data", str(tmp_path / "line3"), "--device", "cpu",
                 "--events", str(events), "--event-store", str(store)]) == 0
    assert {e["stream"] for e in read_jsonl(events)} == {"line3/press-01"}
    fault = next(e for e in read_jsonl(events) if e["kind"] == "machine" and e["status"] == "closed"
                 and e["start"] - T0 <= 560 and e["end"] - T0 >= 500)
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text(f'models:\n  - streams: "line3/press-*"\n    model: {folder}\n'
                   f"sinks:\n  kafka: false\n  event_audio: {store}\nhealth:\n  port: 0\n")
    view = start_web_view(load_config(cfg, env={}), UiOptions(port=0, labelling=True), events_file=str(events))
    shots = Path(os.environ.get("MONITOR_UI_SCREENSHOTS", tmp_path / "shots"))
    shots.mkdir(parents=True, exist_ok=True)
    try:
        browser.get(view.url)
        link = f'a.event-link[data-stream="{fault["stream"]}"]'
        wait_for(lambda: browser.find(link), timeout=20, what="the sensor events on the overview", every=0.5)
        ids = browser.run(f"return [...document.querySelectorAll('{link}')].map(a => a.textContent)")
        assert fault["event_id"] in ids
        browser.get(f"{view.url}event/{fault['event_id']}")
        wait_for(lambda: browser.find("img#figure"), timeout=15, what="the event page's figure", every=0.5)
        width = wait_for(lambda: browser.run(
            "const i = document.getElementById('figure'); return i.complete && i.naturalWidth"),
            timeout=60, what="the channel traces figure")
        assert width > 500
        assert "Sensor channels" in browser.run("return document.body.textContent")
        assert not browser.find("audio") and not browser.find("#label-fault")
        doc = browser.run_async(
            "const done = arguments[arguments.length - 1];"
            "fetch(document.getElementById('rows').href).then(r => r.json()).then(done)")
        assert doc["channels"] == CHANNELS and doc["event"]["event_id"] == fault["event_id"]
        assert doc["event_start_index"] == fault["start_sample"] and doc["complete"]
        kept = json.loads((store / f"{fault['event_id']}.json").read_text())
        assert doc["rows"] == kept["rows"]
        browser.screenshot(shots / "sensor_event.png")
    finally:
        view.close()
