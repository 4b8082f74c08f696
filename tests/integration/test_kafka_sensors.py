"""A sensor CSV produced to Kafka and scored by the running service gives ``replay``'s events.

Real parts only: a Tansu broker, ``monitor produce sensors`` (one JSON reading per message),
``monitor run`` as a subprocess. The reference is ``SensorRunner`` over the same CSV (what
``monitor replay`` runs). A Kafka stream never ends, so the service cannot close what is
still open at the end of the file: the CSV ends with normal readings, and events closed by
``end-of-stream`` in the replay are left out of the comparison.
"""
from __future__ import annotations

import argparse
import json
import signal
import threading
import time

import pytest

from monitor.kafka.broker import Broker, create_topics
from monitor.commands.produce import run_sensors
from monitor.training.sensors import SensorTrainOptions, train_sensors
from tests.monitor.runtime.test_sensors import CHANNELS, synth_rows, write_csv

from .kafka_utils import TOPICS, log_has, read_jsonl, start_worker, stop, wait_for, write_config

pytestmark = pytest.mark.kafka


def _replay_events(model_dir, csv, event_rows=None) -> list[dict]:
    from monitor.runtime.sensor_events import SensorEventSpec
    from monitor.runtime.sensors import SensorRunner
    from monitor.sources.csv_sensors import read_sensor_csv
    from workers.model import load_model

    model = load_model(model_dir, device="cpu")
    t = read_sensor_csv(csv, time_column="time", channels=CHANNELS)
    runner = SensorRunner(model, event_rows=event_rows and SensorEventSpec.for_model(model, event_rows))
    events = runner.feed(csv.stem, t.ts_s, t.values, end_of_stream=True)
    return [e for e in events if e.get("closed_by") != "end-of-stream"]


def _model_and_csv(tmp_path):
    """An ARIMA sensor model, and a stream with a pressure fault, a stuck channel and a gap."""
    write_csv(tmp_path / "train.csv", synth_rows(1500, 0), jitter=0.2)
    model_dir = tmp_path / "model"
    train_sensors(tmp_path / "train.csv", model_dir, SensorTrainOptions(
        scorer="arima", time_column="time", device="cpu", params={"span": 3}))
    rows = synth_rows(700, 5)
    rows[300:360, 1] += 1.2           # a pressure fault
    rows[450:500, 2] = rows[450, 2]   # current stuck
    csv = tmp_path / "pump-7.csv"
    write_csv(csv, rows, jitter=0.2, seed=3, drop=slice(550, 580))  # and a 30 s gap
    return model_dir, csv


def _produce(bootstrap: str, csv, *, realtime: bool = False, speed: float = 1.0) -> int:
    return run_sensors(argparse.Namespace(
        data=str(csv), stream=None, columns=None, time_column="time", bootstrap=bootstrap,
        topic="machine-sensors", realtime=realtime, speed=speed))


def _keys(evs: list[dict]) -> list[tuple]:
    return sorted((e["event_id"], e["status"], e["kind"], e["start"], e["end"]) for e in evs)


def test_service_scores_a_sensor_csv_like_replay(tmp_path):
    """... and keeps the same rows for each machine event (sinks.event_audio) as the replay."""
    model_dir, csv = _model_and_csv(tmp_path)
    want = _replay_events(model_dir, csv, event_rows=tmp_path / "replay_rows")
    assert {e["kind"] for e in want} >= {"machine", "flat-line", "gap"}
    with Broker() as broker:
        create_topics(broker.bootstrap, TOPICS)
        events_path = tmp_path / "events.jsonl"
        cfg = write_config(tmp_path / "cfg.yaml", bootstrap=broker.bootstrap, events=events_path,
                           routes=[("pump-*", model_dir)])
        assert _produce(broker.bootstrap, csv) == 0
        worker = start_worker(cfg, log=tmp_path / "worker.log",
                              extra=["--set", f"sinks.event_audio={tmp_path / 'service_rows'}"])
        try:
            wait_for(lambda: len(read_jsonl(events_path)) >= len(want), timeout=90,
                     what="the service to raise the replay's events")
        finally:
            assert stop(worker) == 0
    got = [e for e in read_jsonl(events_path) if e.get("closed_by") != "end-of-stream"]
    assert _keys(got) == _keys(want)
    closed = [e for e in want if e["kind"] == "machine" and e["status"] == "closed"]
    assert closed
    for e in closed:
        ours, theirs = (json.loads((tmp_path / d / f"{e['event_id']}.json").read_text())
                        for d in ("service_rows", "replay_rows"))
        ours.pop("written"), theirs.pop("written")
        assert ours == theirs and ours["complete"] and len(ours["rows"]) > e["end_sample"] - e["start_sample"]


def test_sensor_stream_killed_mid_fault_restarts_with_the_same_event_ids(tmp_path):
    """kill -9 while the pressure fault is open; the restarted worker resumes from the committed
    offset (rows on the epoch lattice, ids from lattice indices, events held to the first quiet
    point) and the event records, duplicates aside, equal the replay's."""
    model_dir, csv = _model_and_csv(tmp_path)
    want = _replay_events(model_dir, csv)
    events_path, log = tmp_path / "events.jsonl", tmp_path / "w1.log"
    with Broker() as broker:
        create_topics(broker.bootstrap, TOPICS)
        cfg = write_config(tmp_path / "cfg.yaml", bootstrap=broker.bootstrap, events=events_path,
                           routes=[("pump-*", model_dir)])
        first = start_worker(cfg, log=log)
        wait_for(lambda: log_has(log, "partitions assigned"), timeout=40, what="the first worker to join")
        producer = threading.Thread(target=_produce, args=(broker.bootstrap, csv),
                                    kwargs={"realtime": True, "speed": 70.0}, daemon=True)
        producer.start()  # 700 s of readings in 10 s: the fault (300-360 s) at ~4.3-5.1 s
        wait_for(lambda: any(e["kind"] == "machine" for e in read_jsonl(events_path)), timeout=30,
                 what="the first worker to open the fault's event")
        first.send_signal(signal.SIGKILL)
        first.wait(15)
        before = read_jsonl(events_path)
        second = start_worker(cfg, log=tmp_path / "w2.log")
        try:
            producer.join(30)
            wait_for(lambda: {e["event_id"] for e in want} <= {e["event_id"] for e in read_jsonl(events_path)},
                     timeout=60, what="the restarted worker to raise every replay event")
            time.sleep(1.0)  # anything extra it would raise comes now
            assert log_has(tmp_path / "w2.log", "picked up mid-stream")
        finally:
            assert stop(second) == 0
    got = [e for e in read_jsonl(events_path) if e.get("closed_by") != "end-of-stream"]
    print(f"\n{len(before)} event records before the kill, {len(got)} after the restart; "
          f"{len(want)} in the replay")
    missing, extra = set(_keys(want)) - set(_keys(got)), set(_keys(got)) - set(_keys(want))
    assert not missing and not extra, f"missing {sorted(missing)}; extra {sorted(extra)}"
