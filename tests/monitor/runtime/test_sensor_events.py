"""The sensor event store: bounded and evicting like the event-audio store (one folder, one
index), each machine event's grid rows written exactly, nothing outside its folder; and the
same files from ``monitor replay`` of a CSV however it is chunked and from the service's router."""
from __future__ import annotations

import json
import os

import numpy as np
import pytest

from monitor.runtime.event_audio import EventAudioSpec, EventAudioStore
from monitor.runtime.sensor_events import FORMAT, SensorEventSpec, SensorEventStore, find_event_rows
from monitor.sources.base import AudioChunk

from tests.monitor.runtime.test_sensors import CHANNELS, sensor_model, synth_rows, write_csv  # noqa: F401

T0 = 1_700_000_000.0


def _rows(n: int) -> np.ndarray:
    """Row k = [k, k + 0.25, -k]: every value says which row it is."""
    k = np.arange(n, dtype=np.float64)
    return np.stack([k, k + 0.25, -k], axis=1)


def _store(folder, **kw) -> SensorEventStore:
    spec = SensorEventSpec(folder, **{"retain_rows": 50, "context_rows": 5, "after_rows": 2,
                                      "max_event_rows": 80, **kw})
    return SensorEventStore(spec, channels=CHANNELS, step_s=2.0)


def _push(store, rows, start, sizes=(7,), stream="s", origin=T0):
    i, j = 0, 0
    while i < len(rows):
        n = sizes[j % len(sizes)]
        store.on_chunk(AudioChunk(stream, rows[i:i + n], 0.5, start + i, time_origin_s=origin, id_base=850))
        i, j = i + n, j + 1


def _ev(eid, status, a, b, stream="s"):
    return {"event_id": eid, "kind": "machine", "status": status, "stream": stream,
            "start_sample": a, "end_sample": b}


def test_an_events_rows_are_written_exactly_with_context_at_open_and_close(tmp_path):
    store = _store(tmp_path / "ev")
    rows = _rows(200)
    rows[33, 1] = np.nan  # a channel that did not report: null in the file
    _push(store, rows[:40], 0)
    path = store.on_event(_ev("e0", "open", 30, 38))
    doc = json.loads(path.read_text())
    assert doc["format"] == FORMAT and doc["channels"] == CHANNELS and doc["step_s"] == 2.0
    assert doc["index"] == list(range(25, 40)) and doc["first_index"] == 25 and doc["end_index"] == 40
    assert doc["ts"][0] == T0 + 25 * 2.0 and doc["lattice_index"] == 850 and doc["complete"]
    assert doc["rows"][8][1] is None and doc["rows"][8][0] == 33.0
    want = rows[25:40].tolist()
    want[8][1] = None
    assert doc["rows"] == want and doc["event"]["status"] == "open"
    # open: the start stays pinned while the stream goes on past what is retained in memory
    _push(store, rows[40:100], 40)
    assert store._rings["s"].start <= 25
    path = store.on_event(_ev("e0", "closed", 30, 95))
    doc = json.loads(path.read_text())
    assert doc["index"] == list(range(25, 97)) and doc["rows"][-1] == rows[96].tolist()
    assert doc["event"]["status"] == "closed" and doc["complete"]
    assert find_event_rows(tmp_path / "ev", "e0")[1]["index"] == doc["index"]
    # closed: nothing pinned; memory falls back to the last retain_rows (whole chunks)
    _push(store, rows[100:200], 100)
    assert 200 - 50 - 7 < store._rings["s"].start <= 200 - 50
    # an event longer than max_event_rows keeps its last rows only, and says so
    store2 = _store(tmp_path / "ev2")
    _push(store2, rows[:10], 0)
    store2.on_event(_ev("e1", "open", 5, 8))
    _push(store2, rows[10:200], 10)
    doc = json.loads(store2.on_event(_ev("e1", "closed", 5, 190)).read_text())
    assert not doc["complete"] and doc["first_index"] > 0 and doc["index"][-1] == 191


def test_rows_do_not_depend_on_chunking_and_gaps_start_afresh(tmp_path):
    rows = _rows(120)
    docs = []
    for k, sizes in enumerate([(1,), (64,), (5, 11, 2)]):
        store = _store(tmp_path / f"c{k}")
        _push(store, rows[:60], 0, sizes)
        store.on_event(_ev("e", "open", 40, 50))
        _push(store, rows[60:], 60, sizes)
        docs.append(json.loads(store.on_event(_ev("e", "closed", 40, 70)).read_text()))
    strip = [{k: v for k, v in d.items() if k != "written"} for d in docs]
    assert strip[0] == strip[1] == strip[2]
    # a jump in the grid (a gap) starts the stream's rows afresh: nothing from before it
    store = _store(tmp_path / "gap")
    _push(store, rows[:30], 0)
    _push(store, rows[30:60], 100)
    doc = json.loads(store.on_event(_ev("g", "closed", 102, 110)).read_text())
    assert doc["first_index"] == 100 and doc["rows"][0] == rows[30].tolist()
    # a health event, or a stream the store never saw, writes nothing
    assert store.on_event({**_ev("h", "open", 102, 104), "kind": "flat-line"}) is None
    assert store.on_event(_ev("x", "open", 1, 2, stream="other")) is None
    assert not (tmp_path / "gap" / "h.json").exists()


def test_one_folder_bounded_over_audio_and_sensor_events_oldest_first(tmp_path):
    """The sensor store and the audio store share the folder's bounds and eviction: the count
    and bytes are over every event in it, the oldest go first whatever their kind."""
    folder = tmp_path / "event_audio"
    audio = EventAudioStore(EventAudioSpec(folder, max_events=4, retain_s=2.0))
    sr = 16000
    for i in range(0, 2 * sr, 1600):
        audio.on_chunk(AudioChunk("mic", np.full(1600, 0.1, np.float32), sr, i))
    audio.on_event(_ev("a0", "closed", 0, sr, stream="mic"))
    audio.on_event(_ev("a1", "closed", 0, sr, stream="mic"))
    for age, k in enumerate(["a0", "a1"]):
        os.utime(folder / f"{k}.wav", ns=((age + 1) * 10**9,) * 2)  # written long ago
    sensors = _store(folder, max_events=4)
    _push(sensors, _rows(40), 0)
    for k in range(3):
        sensors.on_event(_ev(f"s{k}", "closed", 10 + k, 20 + k))
    names = sorted(p.name for p in folder.iterdir())
    assert names == ["a1.json", "a1.wav", "s0.json", "s1.json", "s2.json"]  # a0 went, wav and json
    assert sensors.evicted == 1 and sensors._total == sum(p.stat().st_size for p in folder.iterdir())
    # bytes: a store whose bound is below two sensor events' size keeps the newest only
    small = _store(folder, max_bytes=int(1.5 * (folder / "s2.json").stat().st_size), max_events=100)
    _push(small, _rows(40), 0)
    small.on_event(_ev("s3", "closed", 12, 22))
    assert sorted(p.name for p in folder.iterdir()) == ["s3.json"]
    # the audio store's lookups ignore sensor files and vice versa
    from monitor.runtime.event_audio import find_event_audio

    assert find_event_audio(folder, "s3") is None and find_event_rows(folder, "s3") is not None


def test_nothing_is_written_outside_the_folder(tmp_path):
    folder = tmp_path / "store" / "event_audio"
    store = _store(folder)
    _push(store, _rows(40), 0, stream="../../escape")
    store.on_event(_ev("e", "open", 10, 20, stream="../../escape"))
    for bad in ("../e", "/tmp/e", "sub/e", "..", ".hidden", ""):
        with pytest.raises(ValueError):
            store.on_event(_ev(bad, "closed", 10, 20, stream="../../escape"))
    files = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert files == [folder / "e.json"]


def test_spec_for_a_model_covers_an_events_windows(sensor_model):
    from monitor.alerting import HysteresisSpec
    from workers.model import load_model

    model = load_model(sensor_model[0], device="cpu")
    spec = SensorEventSpec.for_model(model, "x", hysteresis=HysteresisSpec(2, 3, 3))
    length, hop = model.window.samples(1.0 / model.frontend.spec.step_s)
    assert spec.context_rows >= max(model.vector_span, length, 16)
    assert spec.after_rows == 3 * hop
    assert spec.retain_rows >= spec.context_rows + length + 3 * hop + 256
    with pytest.raises(Exception, match="context_rows"):
        SensorEventSpec("x", retain_rows=10, context_rows=10)


def _grid_rows(path, model):
    """The CSV's rows on the model's grid, by grid index (the reference the files must equal)."""
    from monitor.sources.csv_sensors import read_sensor_csv
    from workers.sensor_frontend import GridRows, SensorGrid

    spec = model.frontend.spec
    t = read_sensor_csv(path, time_column="time", channels=CHANNELS)
    grid = SensorGrid(step_s=spec.step_s, n_channels=len(CHANNELS), max_gap_s=spec.max_gap_s)
    out = {}
    for p in grid.push(t.ts_s, t.values, final=True):
        if isinstance(p, GridRows):
            for i, r in enumerate(p.values):
                out[p.start + i] = r.tolist()
    return out, grid.origin_s


def test_sensor_replay_writes_each_events_rows_the_same_for_any_chunking(sensor_model, tmp_path, capsys):
    from monitor.cli import main
    from workers.model import load_model

    folder, _, root = sensor_model
    model = load_model(folder, device="cpu")
    rows = synth_rows(900, 5)
    rows[500:560, 1] += 1.2  # a pressure fault
    path = tmp_path / "pump.csv"
    write_csv(path, rows, jitter=0.2, seed=3)
    stores = []
    for chunk in (64, 7):
        from monitor.runtime.sensors import SensorRunner
        from monitor.sources.csv_sensors import CsvSensorSource

        spec = SensorEventSpec.for_model(model, tmp_path / f"rows{chunk}")
        runner = SensorRunner(model, event_rows=spec)
        events = []
        for b in CsvSensorSource([path], time_column="time", channels=CHANNELS, chunk_rows=chunk):
            events += runner.feed(b.stream, b.ts_s, b.values, end_of_stream=b.end_of_stream,
                                  machine=b.machine)
        events += runner.close()
        stores.append(tmp_path / f"rows{chunk}")
    machine = {e["event_id"]: e for e in events if e["kind"] == "machine" and e["status"] == "closed"}
    assert machine and sorted(p.stem for p in stores[0].glob("*.json")) == sorted(machine)
    grid, origin = _grid_rows(path, model)
    fault = next(e for e in machine.values() if e["start"] - T0 <= 560 and e["end"] - T0 >= 500)
    for eid, ev in machine.items():
        a = json.loads((stores[0] / f"{eid}.json").read_text())
        b = json.loads((stores[1] / f"{eid}.json").read_text())
        a.pop("written"), b.pop("written")
        assert a == b, eid
        assert a["event"] == ev and a["complete"] and a["time_origin_s"] == origin
        assert a["first_index"] == max(0, ev["start_sample"] - spec.context_rows)
        assert a["rows"] == [grid[k] for k in a["index"]]  # exactly the grid rows, by index
        assert a["ts"][a["index"].index(ev["start_sample"])] == pytest.approx(ev["start"], abs=1e-6)
    assert fault["explanation"]["top_features"][0]["name"] == "pressure"
    # the CLI: --event-store writes the same files
    rc = main(["replay", "--model", str(folder), "--data", str(path), "--device", "cpu",
               "--event-store", str(tmp_path / "cli")])
    out = capsys.readouterr().out
    assert rc == 0 and f"event rows: {2 * len(machine)} written to {tmp_path / 'cli'}" in out
    for eid in machine:
        got = json.loads((tmp_path / "cli" / f"{eid}.json").read_text())
        want = json.loads((stores[0] / f"{eid}.json").read_text())
        got.pop("written"), want.pop("written")
        assert got == want, {k: (got["event"].get(k), v) for k, v in want["event"].items() if got["event"].get(k) != v}


def test_service_router_gives_sensor_models_the_event_store(sensor_model, tmp_path):
    from monitor.config import load_config
    from monitor.service.router import Router

    folder = sensor_model[0]
    cfg_path = tmp_path / "cfg.yaml"
    cfg_path.write_text(f'models:\n  - streams: "pump-*"\n    model: {folder}\n'
                        f"sinks:\n  kafka: false\n  event_audio: {tmp_path / 'ev'}\n  event_audio_max_mb: 3\n"
                        "alerting:\n  k: 2\n  n: 4\n  m: 2\n")
    router = Router(load_config(cfg_path))
    sensor = router.sensors_for("pump-7")[0]
    store = sensor.event_rows
    assert store is not None and sensor.runner.event_audio is store
    assert store.folder == tmp_path / "ev" and store.max_bytes == 3 << 20
    from workers.model import load_model

    model = load_model(folder, device="cpu")
    hop = model.window.samples(1.0 / model.frontend.spec.step_s)[1]
    assert store.spec.after_rows == 2 * hop and store.channels == CHANNELS
    cfg_path.write_text(f'models:\n  - streams: "pump-*"\n    model: {folder}\nsinks:\n  kafka: false\n')
    assert Router(load_config(cfg_path)).sensors_for("pump-7")[0].event_rows is None
