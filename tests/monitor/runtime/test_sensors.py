"""Sensor ingestion: the grid, the front end in the pipeline, training, replay, health events."""
from __future__ import annotations

import json

import numpy as np
import pytest

from monitor.errors import DataError
from monitor.sources.csv_sensors import read_sensor_csv
from workers.sensor_frontend import GridGap, GridRows, SensorGrid

CHANNELS = ["temp", "pressure", "current"]


def synth_rows(n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(n)
    temp = 50 + 2 * np.sin(t / 15) + 0.05 * rng.standard_normal(n)
    pressure = 1 + 0.5 * np.cos(t / 15) + 0.02 * rng.standard_normal(n)
    current = 3 + 0.8 * np.sin(t / 15 + 0.5) + 0.03 * rng.standard_normal(n)
    return np.stack([temp, pressure, current], axis=1)


def write_csv(path, rows: np.ndarray, *, t0: float = 1_700_000_000.0, jitter: float = 0.0,
              seed: int = 0, drop: slice | None = None, sep: str = ",") -> None:
    rng = np.random.default_rng(seed)
    ts = t0 + np.arange(len(rows)) + jitter * rng.uniform(-1, 1, len(rows))
    keep = np.ones(len(rows), bool)
    if drop is not None:
        keep[drop] = False
    lines = [sep.join(["time", *CHANNELS])]
    for t, r in zip(ts[keep], rows[keep]):
        stamp = np.datetime64(int(round(t * 1000)), "ms").astype(str)
        lines.append(sep.join([stamp, *(f"{v:.6f}" for v in r)]))
    path.write_text("\n".join(lines) + "\n")


# -- grid -----------------------------------------------------------------------------------
def _collect(grid: SensorGrid, ts, vals, sizes) -> tuple[np.ndarray, list[GridGap], int]:
    rows, gaps, start, i, k = [], [], None, 0, 0
    while i < len(ts):
        n = sizes[k % len(sizes)]
        for p in grid.push(ts[i:i + n], vals[i:i + n], final=i + n >= len(ts)):
            if isinstance(p, GridRows):
                start = p.start if start is None else start
                rows.append(p.values)
            else:
                gaps.append(p)
        i, k = i + n, k + 1
    return np.concatenate(rows), gaps, start


def test_grid_forward_fills_and_does_not_depend_on_chunking():
    ts = np.array([0.0, 1.1, 1.9, 4.2, 5.0, 6.1])
    vals = np.array([[1, 10], [2, np.nan], [3, 30], [4, 40], [5, 50], [6, 60]], float)
    whole, gaps, start = _collect(SensorGrid(step_s=1.0, n_channels=2, max_gap_s=5), ts, vals, [6])
    assert start == 0 and not gaps
    # step 2 takes the reading at 1.9 (within half a step); 3 is forward-filled; 4 takes 4.2
    np.testing.assert_array_equal(whole, [[1, 10], [2, 10], [3, 30], [3, 30], [4, 40], [5, 50], [6, 60]])
    for sizes in ([1], [2, 3], [4]):
        got, _, _ = _collect(SensorGrid(step_s=1.0, n_channels=2, max_gap_s=5), ts, vals, sizes)
        np.testing.assert_array_equal(got, whole)


def test_grid_cuts_at_gaps_and_counts_late_readings():
    ts = np.array([0.0, 1.0, 2.0, 1.5, 30.0, 31.0])
    vals = np.arange(12, dtype=float).reshape(6, 2)
    grid = SensorGrid(step_s=1.0, n_channels=2, max_gap_s=10)
    pieces = grid.push(ts, vals, final=True)
    kinds = [type(p).__name__ for p in pieces]
    assert kinds == ["GridRows", "GridGap", "GridRows"] and grid.dropped == 1
    assert pieces[0].start == 0 and len(pieces[0].values) == 3
    assert pieces[1].from_s == 2.0 and pieces[1].to_s == 30.0 and pieces[1].resume == 30
    assert pieces[2].start == 30 and len(pieces[2].values) == 2


# -- CSV ------------------------------------------------------------------------------------
def test_csv_errors_name_file_row_and_column(tmp_path):
    p = tmp_path / "bad.csv"
    p.write_text("time;temp;pressure\n2024-01-01 00:00:00;1.0;2.0\n2024-01-01 00:00:01;x;2.0\n")
    with pytest.raises(DataError, match=r"bad.csv: row 3, column 'temp': 'x' is not a number"):
        read_sensor_csv(p, time_column="time")
    with pytest.raises(DataError, match=r"no time column 'ts'"):
        read_sensor_csv(p, time_column="ts")
    with pytest.raises(DataError, match=r"channel column\(s\) \['flow'\] not found"):
        read_sensor_csv(p, time_column="time", channels=["flow"])
    p.write_text("time,temp\n2024-01-01 00:00:00,1\nyesterday,2\n")
    with pytest.raises(DataError, match=r"row 3, column 'time': 'yesterday' is not a time"):
        read_sensor_csv(p, time_column="time")


def test_csv_reads_semicolons_labels_and_times(tmp_path):
    p = tmp_path / "run.csv"
    p.write_text("datetime;a;b;anomaly\n2020-03-09 10:14:33;1;2;0\n2020-03-09 10:14:34;3;;1\n")
    t = read_sensor_csv(p, time_column="datetime")
    assert t.channels == ["a", "b"] and t.ts_s[1] - t.ts_s[0] == 1.0
    assert np.isnan(t.values[1, 1]) and t.labels["anomaly"].tolist() == [0.0, 1.0]


# -- training, replay, health ---------------------------------------------------------------
@pytest.fixture(scope="module")
def sensor_model(tmp_path_factory):
    from monitor.training.sensors import SensorTrainOptions, train_sensors

    root = tmp_path_factory.mktemp("sensors")
    write_csv(root / "train.csv", synth_rows(1500, 0), jitter=0.2)
    folder, meta = train_sensors(root / "train.csv", root / "model", SensorTrainOptions(
        scorer="arima", time_column="time", device="cpu", seed=0, params={"span": 3}))
    return folder, meta, root


def _replay(model, path, chunk: int):
    from monitor.runtime.sensors import SensorRunner
    from monitor.sources.csv_sensors import CsvSensorSource

    runner = SensorRunner(model, keep_windows=True)
    events = []
    for b in CsvSensorSource([path], time_column="time", channels=CHANNELS, chunk_rows=chunk):
        events += runner.feed(b.stream, b.ts_s, b.values, end_of_stream=b.end_of_stream)
    events += runner.close()
    return runner, events


def test_sensor_model_meta_and_replay_events(sensor_model):
    from workers.model import load_model

    folder, meta, root = sensor_model
    fe = meta["features"]
    assert meta["modality"] == "sensor" and fe["kind"] == "sensor" and fe["channels"] == CHANNELS
    assert fe["step_s"] == 1.0 and len(fe["mean"]) == 3 and abs(fe["mean"][0] - 50) < 0.5
    model = load_model(folder, device="cpu")
    rows = synth_rows(900, 5)
    rows[500:560, 1] += 1.2          # a pressure fault the forecaster cannot explain
    rows[700:760, 2] = rows[700, 2]  # current stuck (flat line)
    rows[800, 0] += 60               # temperature spike (out of range, single-channel step)
    path = root / "test.csv"
    write_csv(path, rows, jitter=0.2, seed=3, drop=slice(600, 630))  # 30 s without readings
    runner, events = _replay(model, path, 64)
    machine = [e for e in events if e["kind"] == "machine" and e["status"] == "closed"]
    t0 = 1_700_000_000.0
    assert any(e["start"] - t0 <= 520 and e["end"] - t0 >= 500 for e in machine)
    hit = next(e for e in machine if e["start"] - t0 <= 520 and e["end"] - t0 >= 500)
    assert hit["explanation"]["top_features"][0]["name"] == "pressure"
    kinds = {(e["kind"], e.get("channel")) for e in events if e["status"] == "open"}
    assert ("gap", None) in kinds and ("flat-line", "current") in kinds
    assert ("out-of-range", "temp") in kinds and ("step", "temp") in kinds
    # a per-channel condition's id hashes its channel (and the reading's index on the epoch
    # lattice: start / step, the step is 1 s here); an open and its close share the id
    from monitor.alerting import event_id

    flat = [e for e in events if e["kind"] == "flat-line" and e["channel"] == "current"]
    assert flat[0]["event_id"] == event_id(stream=flat[0]["stream"], scorer=flat[0]["scorer"],
                                           model_version=flat[0]["model_version"],
                                           start_sample=round(flat[0]["start"]), kind="flat-line:current")
    assert {e["event_id"] for e in flat if e["start_sample"] == flat[0]["start_sample"]} == {flat[0]["event_id"]}
    gap = next(e for e in events if e["kind"] == "gap")
    assert 595 <= gap["start"] - t0 <= 601 and 629 <= gap["end"] - t0 <= 631 and gap["missing_s"] > 25
    # the machine event during the gap is closed by it; nothing is scored across it
    assert all(not (e["start"] - t0 < 600 < e["end"] - t0 - 31) for e in machine)
    json.dumps(events)  # events are plain JSON
    from monitor.alerting import HEALTH_KINDS

    assert {e["kind"] for e in events if e["kind"] != "machine"} <= set(HEALTH_KINDS)
    # the same CSV in other chunk sizes gives the same events (health and machine events
    # interleave differently: machine events come out when a chunk is scored)
    _, events7 = _replay(model, path, 7)

    def key(evs):
        return sorted((e["event_id"], e["status"], e["start"], e["end"]) for e in evs)
    assert key(events7) == key(events)


def test_normal_data_raises_few_events(sensor_model):
    from workers.model import load_model

    folder, _, root = sensor_model
    model = load_model(folder, device="cpu")
    path = root / "normal.csv"
    write_csv(path, synth_rows(1200, 9), jitter=0.2, seed=9)
    runner, events = _replay(model, path, 100)
    assert not [e for e in events if e["kind"] != "machine"]
    opened = [e for e in events if e["kind"] == "machine" and e["status"] == "open"]
    assert len(opened) <= 10  # dcase gamma q=0.9 + 2-of-3 hysteresis: rare, short events
    windows = runner.finished[0].windows
    assert windows[0].end_sample - windows[0].start_sample == 1  # one step per alerting window


def test_cli_train_replay_and_errors(tmp_path, capsys):
    from monitor.cli import main

    write_csv(tmp_path / "train.csv", synth_rows(600, 1), sep=";")
    rc = main(["train", "--scorer", "arima", "--data", str(tmp_path / "train.csv"), "--time-column", "time",
               "--channels", "temp,pressure", "--out", str(tmp_path / "m"), "--device", "cpu",
               "--param", "max_p=2"])
    out = capsys.readouterr().out
    assert rc == 0 and "channels  temp, pressure" in out
    write_csv(tmp_path / "test.csv", synth_rows(200, 2))
    rc = main(["replay", "--model", str(tmp_path / "m"), "--data", str(tmp_path / "test.csv"), "--device", "cpu",
               "--events", str(tmp_path / "ev.jsonl")])
    assert rc == 0 and "machine event(s)" in capsys.readouterr().out
    rc = main(["train", "--scorer", "arima", "--data", str(tmp_path / "train.csv"), "--time-column", "when",
               "--out", str(tmp_path / "m2")])
    assert rc == 2 and "no time column 'when'" in capsys.readouterr().err
    rc = main(["evaluate", "--protocol", "skab", "--data", str(tmp_path)])
    assert rc == 2 and "--scorer" in capsys.readouterr().err


@pytest.mark.parametrize("given, held", [(None, 0.2), ("0.1", 0.1), ("0.3", 0.3)])
def test_train_holdout_default_and_any_given_fraction_for_sensors(tmp_path, capsys, given, held):
    """The sensor hold-out is its own default (0.2) and any --holdout is used as given (0.1 was
    silently replaced by 0.2, the audio default standing in for "not given")."""
    from monitor.cli import main

    write_csv(tmp_path / "train.csv", synth_rows(400, 1))
    rc = main(["train", "--scorer", "arima", "--data", str(tmp_path / "train.csv"), "--time-column", "time",
               "--out", str(tmp_path / "m"), "--device", "cpu", "--param", "max_p=1",
               *(["--holdout", given] if given else [])])
    assert rc == 0, capsys.readouterr().err
    meta = json.loads(next((tmp_path / "m").glob("*/meta.json")).read_text())
    assert meta["training"]["holdout"] == held
    assert meta["threshold"]["q"] == 0.99
