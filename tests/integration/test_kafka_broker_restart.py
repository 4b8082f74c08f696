"""A broker that goes away for 10 s and comes back on the same address, empty (Tansu's memory
storage; topics re-created): the worker keeps running, is not ready while the broker is gone,
becomes ready again by itself, and the streams produced after the restart give the events a
clean run gives (published to the events topic, not only to the JSON-lines file)."""
from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import pytest

from monitor.kafka.broker import Broker, create_topics, free_port
from monitor.kafka.producer import file_chunks, producer_for, publish_audio

from .kafka_utils import (TOPICS, consume_all, http_status, log_has, read_jsonl, replay_reference,
                          start_worker, stop, wait_for, write_config)

pytestmark = [pytest.mark.kafka, pytest.mark.wallclock]


def _publish(bootstrap: str, folder: Path) -> None:
    p = producer_for(bootstrap)
    publish_audio(p, "machine-audio", file_chunks(sorted(folder.glob("*.wav"))), start_ts_ns=0)
    p.close()


def test_worker_outlives_a_broker_restart(factory, trained_model, tmp_path):
    before, after = tmp_path / "before", tmp_path / "after"
    for folder, prefix in ((before, "a-"), (after, "b-")):
        folder.mkdir()
        for f in sorted(Path(factory["test"]).glob("*.wav")):
            shutil.copy(f, folder / f"{prefix}{f.name}")
    ref_after, _ = replay_reference(trained_model, after)
    assert ref_after, "no reference events: nothing to check after the restart"
    port, health = free_port(), free_port()
    ready = lambda: http_status(f"http://127.0.0.1:{health}/healthz/ready")  # noqa: E731
    events_path, log = tmp_path / "events.jsonl", tmp_path / "w.log"
    broker = Broker(port=port).start()
    try:
        create_topics(broker.bootstrap, TOPICS)
        cfg = write_config(tmp_path / "cfg.yaml", bootstrap=broker.bootstrap, events=events_path,
                           health_port=health, routes=[("a-*", trained_model), ("b-*", trained_model)])
        worker = start_worker(cfg, log=log)
        try:
            wait_for(lambda: ready() == 200, timeout=60, what="the worker to become ready")
            _publish(broker.bootstrap, before)
            wait_for(lambda: any(e["stream"].startswith("a-") for e in read_jsonl(events_path)), timeout=90,
                     what="events of the streams before the restart")
            time.sleep(2)  # a few commit intervals: the producer has published with its producer id
            broker.stop()
            down_at = time.monotonic()
            wait_for(lambda: ready() == 503, timeout=30, what="not ready with the broker gone")
            time.sleep(max(0.0, 10 - (time.monotonic() - down_at)))
            broker = Broker(port=port).start()
            create_topics(broker.bootstrap, TOPICS)
            wait_for(lambda: ready() == 200, timeout=90, what="the worker to become ready again by itself")
            ready_again_s = time.monotonic() - down_at
            _publish(broker.bootstrap, after)
            want = {(e["event_id"], e["status"]) for e in ref_after}
            seen: dict = {}

            def published_after():
                msgs = consume_all(broker.bootstrap, "machine-events", expect=10**6, timeout=3)
                seen["got"] = {(e["event_id"], e["status"]) for e in (json.loads(m.value) for m in msgs)
                               if e["stream"].startswith("b-")}
                return want <= seen["got"]

            wait_for(published_after, timeout=150, every=1, what="the events after the restart on the events topic")
            assert worker.poll() is None, "the worker exited"
        finally:
            assert stop(worker, timeout=60) == 0
    finally:
        broker.stop()
    got = seen["got"]
    assert got == want, (sorted(want - got)[:3], sorted(got - want)[:3])
    print(json.dumps({"ready_again_after_s": round(ready_again_s, 1), "events_after": len(got),
                      "producer_rebuilt": log_has(log, "Kafka producer rebuilt")}))
