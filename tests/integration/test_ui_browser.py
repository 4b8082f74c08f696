"""The web view in a real browser: headless Chromium (Debian's package, driven over WebDriver)
against the real broker, the real service (a ``monitor run`` process) and streams with an
injected fault. The overview shows the faulty stream's event live; its page loads the audio;
"fault" writes the label record. Skips with the reason where Chromium cannot be had.

Set ``MONITOR_UI_SCREENSHOTS=DIR`` to keep the pages' screenshots there (docs/ui/ in the README).
"""
from __future__ import annotations

import os
import shutil
import socket
import time
from pathlib import Path

import pytest

from monitor.kafka.broker import Broker, create_topics
from monitor.kafka.producer import file_chunks, producer_for, publish_audio

from .kafka_utils import TOPICS, read_jsonl, start_worker, stop, wait_for, write_config
from .webdriver import ELEMENT, Browser, find_browser

pytestmark = pytest.mark.kafka

NORMAL, FAULTY = "line3/pump-01", "line3/pump-02"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def browser():
    found = find_browser()
    if isinstance(found, str):
        pytest.skip(found)
    try:
        b = Browser(*found)
    except (OSError, RuntimeError) as exc:
        pytest.skip(f"headless Chromium did not start: {exc}")
    yield b
    b.close()


def _wait_dom(b: Browser, css: str, *, timeout: float, what: str) -> list[str]:
    return wait_for(lambda: b.find(css), timeout=timeout, what=what, every=0.5)


def test_engineer_sees_the_event_listens_and_labels_it(browser, factory, trained_model, tmp_path):
    from monitor.config import load_config
    from monitor.ui.app import start_web_view
    from monitor.ui.server import UiOptions

    model = tmp_path / "pump"  # a copy: labels are written beside the model
    shutil.copytree(trained_model, model)
    test = Path(factory["test"])
    normal, faulty = sorted(test.glob("normal_*.wav"))[0], sorted(test.glob("anomaly_*.wav"))[0]
    shots = Path(os.environ.get("MONITOR_UI_SCREENSHOTS", tmp_path / "shots"))
    shots.mkdir(parents=True, exist_ok=True)
    with Broker() as broker:
        create_topics(broker.bootstrap, TOPICS)
        events = tmp_path / "events.jsonl"
        cfg_path = write_config(tmp_path / "cfg.yaml", bootstrap=broker.bootstrap, events=events,
                                windows=tmp_path / "windows.jsonl", health_port=_free_port(),
                                routes=[("line3/pump-*", model)])
        sets = [f"sinks.event_audio={tmp_path / 'event_audio'}"]
        worker = start_worker(cfg_path, log=tmp_path / "worker.log", extra=[a for s in sets for a in ("--set", s)])
        view = start_web_view(load_config(cfg_path, overrides=sets, env={}), UiOptions(port=0, labelling=True))
        try:
            browser.get(view.url)
            _wait_dom(browser, "#live", timeout=10, what="the overview page")
            wait_for(lambda: browser.run("return document.getElementById('live').textContent") == "live",
                     timeout=15, what="the server-sent events stream to connect")
            producer = producer_for(broker.bootstrap)
            publish_audio(producer, "machine-audio", file_chunks([normal, faulty], names=[NORMAL, FAULTY]),
                          start_ts_ns=time.time_ns(), realtime=True)
            producer.close()
            # the faulty stream's event appears on the page without a reload
            _wait_dom(browser, f'a.event-link[data-stream="{FAULTY}"]', timeout=120,
                      what=f"{FAULTY}'s event on the overview")
            wait_for(lambda: len(browser.find("#streams tbody tr")) >= 2, timeout=30,
                     what="both streams in the overview")
            time.sleep(2)  # a few metrics polls: the sparklines have points
            browser.screenshot(shots / "overview.png")
            rows = browser.run("return [...document.querySelectorAll('#streams tbody tr')]"
                               ".map(r => r.dataset.stream)")
            assert set(rows) == {NORMAL, FAULTY}
            models = browser.run("return [...document.querySelectorAll('#streams tbody tr')]"
                                 ".map(r => r.children[2].textContent)")
            assert all(m.startswith("ae ae-") for m in models), models  # scorer and version
            assert not [e for e in read_jsonl(events) if e["stream"] == NORMAL and e["kind"] == "machine"]
            link = browser.find(f'a.event-link[data-stream="{FAULTY}"]')[0]
            event_id = browser.run("return arguments[0].textContent", {ELEMENT: link})
            wait_for(lambda: (tmp_path / "event_audio" / f"{event_id}.wav").is_file(), timeout=30,
                     what="the event's audio in the store")
            browser.click(link)
            _wait_dom(browser, "audio#audio", timeout=15, what="the event page's audio element")
            # the browser fetched and decoded the WAV's header: it knows the duration
            duration = wait_for(lambda: browser.run(
                "const a = document.getElementById('audio');"
                "return a.readyState >= 1 && a.duration > 0 ? a.duration : 0"), timeout=20,
                what="the audio element to load its metadata")
            assert duration > 0.3
            assert wait_for(lambda: browser.run(
                "const i = document.getElementById('figure'); return i.complete && i.naturalWidth"),
                timeout=60, what="the spectrogram figure")
            browser.screenshot(shots / "event.png")
            browser.send_keys(browser.find("#who")[0], "ana")
            browser.click(browser.find("#label-fault")[0])
            text = wait_for(lambda: browser.run("return document.getElementById('label-result').textContent"),
                            timeout=15, what="the label's confirmation")
            assert text.startswith("labelled fault by ana"), text
            labels = read_jsonl(model / "labels.jsonl")
            assert [(r["event_id"], r["label"], r["labelled_by"]) for r in labels] == [(event_id, "fault", "ana")]
            assert (model / labels[0]["audio"]).is_file()
            browser.get(view.url + "labels")
            _wait_dom(browser, "pre", timeout=10, what="the labels page")
            browser.screenshot(shots / "labels.png")
            page = browser.run("return document.body.textContent")
            assert event_id in page and "--from-model" in page
        finally:
            view.close()
            stop(worker)
