"""Files an operator keeps (issue 19, item 5): logrotate renames ``events.jsonl`` and the
windows log, then the service gets SIGHUP (``systemctl reload``); the worker, on a real broker,
writes everything after the signal to new files at the same paths and nothing is lost."""
from __future__ import annotations

import signal
import time
from pathlib import Path

import pytest

from monitor.kafka.broker import Broker, create_topics
from monitor.kafka.producer import file_chunks, producer_for, publish_audio

from .kafka_utils import (TOPICS, log_has, read_jsonl, replay_reference, start_worker, stop, wait_for,
                          write_config)

pytestmark = pytest.mark.kafka


def _publish(bootstrap: str, files: list[Path], prefix: str) -> None:
    producer = producer_for(bootstrap)
    try:
        publish_audio(producer, "machine-audio", file_chunks(files, prefix=prefix), start_ts_ns=0)
    finally:
        producer.close()


def test_sighup_reopens_events_and_windows_files(trained_model, factory, tmp_path):
    files = sorted(Path(factory["test"]).glob("*.wav"))
    _, ref = replay_reference(trained_model, factory["test"])
    per_round = len(ref)  # windows of one pass over the files
    with Broker() as broker:
        create_topics(broker.bootstrap, TOPICS)
        events, windows, log = tmp_path / "events.jsonl", tmp_path / "windows.jsonl", tmp_path / "worker.log"
        cfg = write_config(tmp_path / "cfg.yaml", bootstrap=broker.bootstrap, events=events, windows=windows,
                           routes=[("before/*", trained_model), ("after/*", trained_model)])
        _publish(broker.bootstrap, files, "before/")
        worker = start_worker(cfg, log=log)
        try:
            wait_for(lambda: len(read_jsonl(windows)) >= per_round and read_jsonl(events),
                     timeout=120, what="the first round of windows and events")
            time.sleep(1.0)  # the last commit's flush
            events.rename(tmp_path / "events.jsonl.1")  # what logrotate does first ...
            windows.rename(tmp_path / "windows.jsonl.1")
            worker.send_signal(signal.SIGHUP)  # ... then postrotate: systemctl reload
            wait_for(lambda: log_has(log, "files reopened"), timeout=30, what="the reopen log line")
            assert worker.poll() is None, "SIGHUP must not stop the worker"
            _publish(broker.bootstrap, files, "after/")
            wait_for(lambda: len(read_jsonl(windows)) >= per_round, timeout=120,
                     what="the second round of windows in the new file")
            time.sleep(1.0)
        finally:
            assert stop(worker) == 0
    old_w, new_w = read_jsonl(tmp_path / "windows.jsonl.1"), read_jsonl(windows)
    assert {r["stream"].split("/")[0] for r in old_w} == {"before"}
    assert {r["stream"].split("/")[0] for r in new_w} == {"after"}
    assert len(old_w) == len(new_w) == per_round
    old_e, new_e = read_jsonl(tmp_path / "events.jsonl.1"), read_jsonl(events)
    assert old_e and new_e
    assert {e["stream"].split("/")[0] for e in old_e} == {"before"}
    assert {e["stream"].split("/")[0] for e in new_e} == {"after"}
    assert len(old_e) == len(new_e)  # the same clips, the same events, each in its own file
