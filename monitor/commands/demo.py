"""``monitor demo``: the whole story over Kafka, on synthetic machines, with nothing to download.

Starts the embedded Kafka-protocol broker (Tansu) and creates the topics; synthesises a small
factory (a pump and a fan, plus a sensor rig) and trains a model for each; starts the streaming
service (the same ``Worker`` ``monitor run`` starts) in this process; publishes audio streams at
real-time pace and a sensor stream, with injected faults; prints events as the service emits
them; reads the events topic back; writes a plot; stops everything cleanly.
"""
from __future__ import annotations

import argparse
import json
import threading
import time
from pathlib import Path

import numpy as np

from monitor.kafka.broker import Broker, create_topics
from monitor.evaluation.dcase import evaluate_audio
from monitor.synth import inject_fault, machine_sound, write_factory
from monitor.training.audio import TrainOptions, train_audio
from monitor.commands.common import EpochProgress, fmt

HELP = "the whole story over Kafka: broker, training, live streams with faults, events, plot"
MACHINES = {"pump": 110.0, "fan": 190.0}
#: the live streams: (stream id, machine, fault kind or None, fault start s, end s)
STREAMS = [("line3/pump-01", "pump", None, 0, 0), ("line3/pump-02", "pump", "clicks", 5.0, 9.0),
           ("line3/fan-01", "fan", "harmonic", 10.0, 14.0), ("line3/fan-02", "fan", None, 0, 0)]
SENSOR_STREAM = "line3/rig-01/sensors"
TOPICS = {"machine-audio": 4, "machine-sensors": 2, "machine-events": 1, "machine-dead-letter": 1}


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("demo", help=HELP, description=HELP)
    p.add_argument("--out", default="demo-out", help="folder for data, models, events and plots")
    p.add_argument("--epochs", type=int, default=30)
    p.add_argument("--seconds", type=float, default=16.0, help="length of each live audio stream")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="auto")
    p.add_argument("--ui", action="store_true", help="serve the live web view (127.0.0.1, labelling "
                   "on), print its URL, and keep it up after the run until Ctrl-C")
    p.add_argument("--ui-port", type=int, default=8090, help="the web view's port (0 = any free)")
    p.set_defaults(run=run)


def _sensor_rows(n: int, *, seed: int, fault: tuple[int, int] | None = None) -> np.ndarray:
    """A rig at 1 Hz: temperature, vibration, motor current (slow cycles + noise)."""
    rng = np.random.default_rng(seed)
    t = np.arange(n, dtype=np.float64)
    temp = 60 + 2 * np.sin(2 * np.pi * t / 300) + 0.1 * rng.standard_normal(n)
    vib = 1 + 0.2 * np.sin(2 * np.pi * t / 60) + 0.05 * rng.standard_normal(n)
    cur = 10 + 0.5 * np.sin(2 * np.pi * t / 300 + 1) + 0.05 * rng.standard_normal(n)
    if fault is not None:
        a, b = fault
        vib[a:b] += 1.5 + 0.5 * rng.standard_normal(b - a)  # a bearing starts to rattle
        temp[a:b] += np.linspace(0, 4, b - a)
    return np.stack([temp, vib, cur], axis=1)


def _train_sensor(out: Path, seed: int, device: str):
    from monitor.training.sensors import SensorTrainOptions, train_sensors  # noqa: PLC0415

    csv = out / "data" / "rig-train.csv"
    rows = _sensor_rows(1800, seed=seed)
    lines = ["timestamp,temp,vibration,current"] + [
        f"{i},{r[0]:.4f},{r[1]:.4f},{r[2]:.4f}" for i, r in enumerate(rows)]
    csv.write_text("\n".join(lines) + "\n")
    return train_sensors(csv, out / "models" / "rig", SensorTrainOptions(
        scorer="ae", time_column="timestamp", seed=seed, device=device, epochs=20))


def run(args: argparse.Namespace) -> int:
    import soundfile as sf  # noqa: PLC0415

    from monitor.config import load_config  # noqa: PLC0415
    from monitor.service.worker import Worker  # noqa: PLC0415
    from monitor.sinks.base import Sink  # noqa: PLC0415
    from monitor.sinks.stdout import describe  # noqa: PLC0415
    from monitor.kafka.producer import producer_for, file_chunks, publish_audio  # noqa: PLC0415
    from monitor.kafka.read_events import read_events  # noqa: PLC0415

    import logging  # noqa: PLC0415

    # producer and service share this process: kafka-python's "blocking the event loop" notes
    # while the scorer holds the GIL are expected here
    logging.getLogger("kafka.net.selector").setLevel(logging.ERROR)
    t0 = time.perf_counter()
    out = Path(args.out)
    (out / "data").mkdir(parents=True, exist_ok=True)
    print(f"1. synthesising a factory ({', '.join(MACHINES)}) in {out / 'data'} and training models")
    folders = write_factory(out / "data", machines=MACHINES, normal_clips=20, test_normal=4,
                            test_faulty=4, seconds=4.0, seed=args.seed)
    models = {}
    for name, f in folders.items():
        progress = EpochProgress(f"train {name}")
        folder, meta = train_audio(f["train"], out / "models" / name,
                                   TrainOptions(seed=args.seed, epochs=args.epochs, device=args.device,
                                                params={"batch_size": 128}, holdout=0.2), progress=progress)
        progress.close()
        models[name] = folder.parent
        from workers.model import load_model  # noqa: PLC0415

        res = evaluate_audio(load_model(folder, device=args.device), f["test"])
        print(f"   {name}: model {folder.name}, threshold {meta['threshold']['value']:.4g}, "
              f"test AUC {fmt(res['auc'])} ({meta['training']['seconds']:.0f} s)")
    sensor_folder, sensor_meta = _train_sensor(out, args.seed, args.device)
    print(f"   sensor rig: model {sensor_folder.name} (channels temp, vibration, current), "
          f"threshold {sensor_meta['threshold']['value']:.4g}")

    sr = 16000
    wav_dir = out / "data" / "live"
    wav_dir.mkdir(exist_ok=True)
    files = []
    for i, (stream, machine, kind, a, b) in enumerate(STREAMS):
        x = machine_sound(seconds=args.seconds, f0=MACHINES[machine], seed=args.seed + 900 + i)
        if kind:
            x = inject_fault(x, kind=kind, start_s=a, end_s=b, seed=i)
        path = wav_dir / machine / "live" / f"{stream.replace('/', '_')}.wav"
        path.parent.mkdir(parents=True, exist_ok=True)
        sf.write(path, x, sr, subtype="PCM_16")
        files.append((stream, path))

    events_path, windows_path = out / "events.jsonl", out / "windows.jsonl"
    for p in (events_path, windows_path):
        p.unlink(missing_ok=True)
    with Broker(log_file=out / "broker.log") as broker:
        create_topics(broker.bootstrap, TOPICS)
        print(f"2. broker (Tansu, in memory) on {broker.bootstrap}; topics "
              + ", ".join(f"{k}:{v}" for k, v in TOPICS.items()))
        cfg = load_config(Path(__file__).resolve().parents[2] / "configs" / "demo.yaml", env={}, overrides=[
            f"kafka.bootstrap={broker.bootstrap}", f"kafka.group_id=demo-{time.time_ns()}",
            f"service.device={args.device}", f"service.windows_log={windows_path}",
            f"sinks.jsonl={events_path}"] + (_ui_overrides(out) if args.ui else []))
        routes = [{"streams": "line3/pump-*", "model": str(models["pump"])},
                  {"streams": "line3/fan-*", "model": str(models["fan"])},
                  {"streams": "line3/rig-*", "model": str(sensor_folder.parent)}]
        from dataclasses import replace  # noqa: PLC0415

        from monitor.config import RouteConfig  # noqa: PLC0415

        cfg = replace(cfg, models=[RouteConfig(**r) for r in routes])

        class Printer(Sink):
            def write(self, event):
                print(f"   {time.perf_counter() - t_live:5.1f}s  " + describe(event), flush=True)

        worker = Worker(cfg, event_sinks=[Printer()])
        view = _start_ui(cfg, args.ui_port) if args.ui else None
        t_live = time.perf_counter()
        thread = threading.Thread(target=worker.run, name="worker", daemon=True)
        thread.start()
        while not getattr(worker, "ready_at", None):
            if not thread.is_alive():
                print("the service stopped before it was ready")
                return 1
            time.sleep(0.1)
        print(f"3. service ready (joined the group in {time.perf_counter() - t_live:.1f} s); publishing "
              f"{len(STREAMS)} audio streams of {args.seconds:.0f} s in real time (faults: pump-02 clicks "
              f"5-9 s, fan-01 resonance 10-14 s) and {SENSOR_STREAM} (vibration fault at 150-210 s, "
              f"sent at 30x); events as they arrive:")
        t_live = time.perf_counter()
        # every client of the demo takes the service's kafka: section (monitor.kafka.security)
        sensor = threading.Thread(target=_publish_sensors, args=(cfg.kafka,), daemon=True)
        sensor.start()
        producer = producer_for(cfg.kafka)
        chunks = file_chunks([p for _, p in files], names=[s for s, _ in files], sample_rate=sr, chunk_ms=100)
        stats = publish_audio(producer, "machine-audio", chunks, start_ts_ns=0, realtime=True)
        producer.close()
        sensor.join(30)
        _wait_quiet(windows_path, timeout=20)
        if view is not None:
            _hold_ui(view)
        worker.stop()
        thread.join(15)
        live_s = time.perf_counter() - t_live
        topic_events = sum(1 for _ in read_events(cfg.kafka, topic=cfg.kafka.events_topic))
    events = [json.loads(line) for line in events_path.read_text().splitlines() if line.strip()]
    windows = [json.loads(line) for line in windows_path.read_text().splitlines() if line.strip()]
    opened = [e for e in events if e["status"] == "open"]
    print(f"4. {stats.messages} audio chunks + sensor readings in {live_s:.1f} s; {len(windows)} windows "
          f"scored ({len(windows) / live_s:.1f}/s), {len(events)} events ({len(opened)} opened) on "
          f"{len(STREAMS) + 1} streams; {topic_events} events read back from {cfg.kafka.events_topic}")
    plot = _plot(out / "timeline.png", windows, events, routes)
    print(f"5. events in {events_path}; plot {plot}")
    print(f"done in {time.perf_counter() - t0:.0f} s")
    detected = {e["stream"] for e in opened}
    return 0 if {"line3/pump-02", "line3/fan-01"} <= detected else 1


def _ui_overrides(out: Path) -> list[str]:
    """The web view needs the workers' /metrics and the event audio store."""
    import socket  # noqa: PLC0415

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return [f"health.port={port}", f"sinks.event_audio={out / 'event_audio'}"]


def _start_ui(cfg, port: int):
    from monitor.ui.app import start_web_view  # noqa: PLC0415
    from monitor.ui.server import UiOptions  # noqa: PLC0415

    view = start_web_view(cfg, UiOptions(port=port, labelling=True))
    print(f"   web view: {view.url} (live now; stays up after the run until Ctrl-C)", flush=True)
    return view


def _hold_ui(view) -> None:
    """Until Ctrl-C (or SIGTERM)."""
    from monitor.ui.app import serve_until_stopped  # noqa: PLC0415

    print(f"   the run is over; the web view stays up on {view.url}: press Ctrl-C to stop", flush=True)
    serve_until_stopped(view)
    print("   stopping the web view", flush=True)


def _publish_sensors(kafka, *, speed: float = 30.0) -> None:
    from monitor.kafka.cli_options import connected_producer  # noqa: PLC0415

    rows = _sensor_rows(300, seed=77, fault=(150, 210))
    p = connected_producer(kafka)
    t0 = time.monotonic()
    for i in range(0, len(rows), 5):  # five readings per message (a JSON list)
        delay = t0 + i / speed - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        batch = [{"ts": (i + j) * 1_000_000_000,
                  "values": {"temp": float(r[0]), "vibration": float(r[1]), "current": float(r[2])}}
                 for j, r in enumerate(rows[i:i + 5])]
        p.send("machine-sensors", key=SENSOR_STREAM.encode(), value=json.dumps(batch).encode())
    p.flush()
    p.close()


def _wait_quiet(path: Path, *, timeout: float) -> None:
    """Until the windows log stops growing (the service has caught up)."""
    deadline, last = time.monotonic() + timeout, -1
    while time.monotonic() < deadline:
        size = path.stat().st_size if path.exists() else 0
        if size == last and size:
            return
        last = size
        time.sleep(1.0)


def _plot(path: Path, windows: list[dict], events: list[dict], routes: list[dict]) -> Path:
    """Every stream's window scores divided by its model's threshold (1.0 = the threshold)."""
    from models.threshold import Threshold  # noqa: PLC0415
    from workers.model import load_model  # noqa: PLC0415

    from monitor.evaluation import plots  # noqa: PLC0415

    info = {}
    for r in routes:
        m = load_model(r["model"], device="cpu")
        info[m.version] = (m.threshold.value, float(m.frontend.sample_rate))
    series: dict[str, tuple[list, list]] = {}
    for w in windows:
        thr, rate = info[w["model_version"]]
        t, s = series.setdefault(w["stream"], ([], []))
        t.append(w["start_sample"] / rate)
        s.append(w["score"] / thr)
    streams = {k: (np.array(t), np.array(s)) for k, (t, s) in sorted(series.items())}
    return plots.timeline(path, streams=streams, threshold=Threshold(value=1.0, method="own threshold"),
                          events=[e for e in events if e.get("kind") == "machine"],
                          title="window score / threshold, events shaded (over Kafka)")
