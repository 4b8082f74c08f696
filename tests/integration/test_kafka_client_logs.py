"""With the broker gone, librdkafka's and kafka-python's complaints reach the log as our JSON
lines, a few per situation, not a flood.

Why: librdkafka wrote raw ``%3|...|FAIL|`` lines into the JSON log, 352 lines in 18 s with the
broker down."""
from __future__ import annotations

import json
import time

import pytest

from monitor.kafka.broker import Broker, create_topics

from .kafka_utils import TOPICS, log_has, start_worker, stop, wait_for, write_config

pytestmark = [pytest.mark.kafka, pytest.mark.wallclock]

DOWN_S = 18.0


def test_client_logs_are_json_and_limited_while_the_broker_is_down(trained_model, tmp_path):
    pytest.importorskip("confluent_kafka")
    log = tmp_path / "worker.log"
    broker = Broker().start()
    try:
        create_topics(broker.bootstrap, TOPICS)
        cfg = write_config(tmp_path / "c.yaml", bootstrap=broker.bootstrap, routes=[("*", str(trained_model))],
                           events=tmp_path / "events.jsonl", client="confluent")
        worker = start_worker(cfg, log=log)
        wait_for(lambda: log_has(log, "partitions assigned"), timeout=90, what="the worker to join the group")
    finally:
        broker.stop()
    try:
        mark = len(log.read_text().splitlines())
        time.sleep(DOWN_S)
        assert worker.poll() is None  # a broker that went away is waited for, not fatal
    finally:
        assert stop(worker) == 0
    lines = log.read_text().splitlines()[mark:]
    records = [json.loads(x) for x in lines]  # every line is one of ours: raises on a raw %3|... line
    client = [r for r in records if r["logger"].startswith(("monitor.librdkafka", "kafka"))]
    assert any(r["logger"] == "monitor.librdkafka" for r in client), "librdkafka's lines must reach our log"
    print(f"\n{len(client)} client log lines in {DOWN_S:.0f} s with the broker down (of {len(records)} lines)")
    assert len(client) <= 20, [r["msg"][:120] for r in client]
