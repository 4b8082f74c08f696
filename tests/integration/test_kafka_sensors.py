"""A sensor CSV produced to Kafka and scored by the running service gives ``replay``'s events.

Real parts only: a Tansu broker, ``monitor produce sensors`` (one JSON reading per message),
``monitor run`` as a subprocess. The reference is ``SensorRunner`` over the same CSV (what
``monitor replay`` runs). A Kafka stream never ends, so the service cannot close what is
still open at the end of the file: the CSV ends with normal readings, and events closed by
``end-of-stream`` in the replay are left out of the comparison.
"""
from __future__ import annotations

import argparse

import pytest

from monitor.broker import Broker, create_topics
from monitor.commands.produce import run_sensors
from monitor.sensor_training import SensorTrainOptions, train_sensors
from tests.monitor.test_sensors import CHANNELS, synth_rows, write_csv

from .kafka_utils import TOPICS, read_jsonl, start_worker, stop, wait_for, write_config

pytestmark = pytest.mark.kafka


def _replay_events(model_dir, csv) -> list[dict]:
    from monitor.sensor_runner import SensorRunner
    from monitor.sources.csv_sensors import read_sensor_csv
    from workers.model import load_model

    model = load_model(model_dir, device="cpu")
    t = read_sensor_csv(csv, time_column="time", channels=CHANNELS)
    runner = SensorRunner(model)
    events = runner.feed(csv.stem, t.ts_s, t.values, end_of_stream=True)
    return [e for e in events if e.get("closed_by") != "end-of-stream"]


def test_service_scores_a_sensor_csv_like_replay(tmp_path):
    write_csv(tmp_path / "train.csv", synth_rows(1500, 0), jitter=0.2)
    model_dir = tmp_path / "model"
    train_sensors(tmp_path / "train.csv", model_dir, SensorTrainOptions(
        scorer="arima", time_column="time", device="cpu", params={"span": 3}))
    rows = synth_rows(700, 5)
    rows[300:360, 1] += 1.2           # a pressure fault
    rows[450:500, 2] = rows[450, 2]   # current stuck
    csv = tmp_path / "pump-7.csv"
    write_csv(csv, rows, jitter=0.2, seed=3, drop=slice(550, 580))  # and a 30 s gap
    want = _replay_events(model_dir, csv)
    assert {e["kind"] for e in want} >= {"machine", "flat-line", "gap"}
    with Broker() as broker:
        create_topics(broker.bootstrap, TOPICS)
        events_path = tmp_path / "events.jsonl"
        cfg = write_config(tmp_path / "cfg.yaml", bootstrap=broker.bootstrap, events=events_path,
                           routes=[("pump-*", model_dir)])
        assert run_sensors(argparse.Namespace(
            data=str(csv), stream=None, columns=None, time_column="time", bootstrap=broker.bootstrap,
            topic="machine-sensors", realtime=False, speed=1.0)) == 0
        worker = start_worker(cfg, log=tmp_path / "worker.log")
        try:
            wait_for(lambda: len(read_jsonl(events_path)) >= len(want), timeout=90,
                     what="the service to raise the replay's events")
        finally:
            assert stop(worker) == 0
    got = [e for e in read_jsonl(events_path) if e.get("closed_by") != "end-of-stream"]

    def key(evs):
        return sorted((e["event_id"], e["status"], e["kind"], e["start"], e["end"]) for e in evs)
    assert key(got) == key(want)
