"""``monitor listen``: score a live microphone with a trained model, events as they happen.

The microphone runs through the same ``StreamRunner`` as ``monitor replay`` and the Kafka
service, so a live window's score equals the replayed score of the same audio. On a terminal a
one-line status shows the input level, the current score against the threshold and the open
events; otherwise a JSON status line is logged every ``--status-every`` seconds. Ctrl-C (or
SIGTERM) stops cleanly: open events are closed and every file is flushed.
"""
from __future__ import annotations

import argparse
import json
import logging
import math
import signal
import sys
import time
from typing import Any, TextIO

import numpy as np

from workers.input_health import AudioHealthSpec
from workers.conditioned import bind_condition
from workers.model import load_model
from workers.windowing import WindowScore

from monitor.runtime.drive import LatencyStats, drive, warm_up
from monitor.runtime.metrics import RuntimeMetrics
from monitor.runtime.runner import StreamRunner
from monitor.sinks.factory import build_sinks
from monitor.sinks.stdout import StdoutSink
from monitor.sinks.base import Sink
from monitor.sources.base import AudioChunk
from monitor.commands.common import threshold_arg
from monitor.commands.decisions import add_config_option, decisions
from monitor.sources import LIVE
from monitor.sources.microphone import resolve_device

log = logging.getLogger("monitor.listen")

HELP = "score a live microphone: events, level and score as they happen"


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("listen", help=HELP, description=HELP)
    p.add_argument("--model", metavar="MODEL_DIR", help="the model (or take it from --config's routes)")
    p.add_argument("--input", default="mic", choices=sorted(LIVE),
                   help="'mic' (default): a sound card through PortAudio; '-': raw mono PCM at the "
                        "model's rate on standard input, e.g. `arecord -f S16_LE -r 16000 -c 1 -t raw | "
                        "monitor listen --model M --input -`")
    p.add_argument("--format", dest="fmt", default="s16le", choices=("s16le", "f32le"),
                   help="with --input -: the PCM format")
    p.add_argument("--device", metavar="D", help="input device index or name (substring); "
                   "default: the system's default input (see `monitor devices`)")
    p.add_argument("--events", metavar="FILE.jsonl", help="also append events to this JSON-lines file")
    p.add_argument("--windows", metavar="FILE.jsonl",
                   help="write every window's score, level and latency as JSON lines")
    p.add_argument("--record", metavar="FILE.wav", help="record what was scored (gaps as zeros)")
    p.add_argument("--plot", metavar="FILE.png", help="score timeline with threshold and events, at exit")
    p.add_argument("--duration", type=float, metavar="S", help="stop after S seconds of audio")
    p.add_argument("--stream", default="mic", help="stream id in events (e.g. line3/pump-02/mic0)")
    p.add_argument("--machine", help="machine label in events")
    p.add_argument("--json", action="store_true", help="print events as JSON lines")
    p.add_argument("--block-ms", type=float, default=100.0, help="capture block length")
    p.add_argument("--capture-rate", type=int, help="record at this rate and resample to the model's")
    p.add_argument("--condition", help="the operating condition of the audio, for a model that "
                   "knows several (condition-clf), e.g. section_00_pat_01")
    p.add_argument("--threshold", type=threshold_arg, help="override the stored threshold for this run")
    p.add_argument("--compute-device", default="auto", help="where to score: auto, cpu, cuda")
    p.add_argument("--no-input-health", action="store_true",
                   help="turn off the clipping / dead-input checks (dead windows are then scored)")
    p.add_argument("--status-every", type=float, default=5.0, metavar="S",
                   help="seconds between status log lines when not on a terminal")
    p.add_argument("--threads", type=int, default=1,
                   help="torch threads for scoring (one stream needs one; more threads contend "
                        "for the cores and raise latency)")
    p.add_argument("--metrics-port", type=int, help="serve Prometheus /metrics on this port")
    add_config_option(p)
    p.set_defaults(run=run)


class _Status:
    """The one-line status on a terminal (stderr); cleared before anything else is printed."""

    def __init__(self, stream: TextIO) -> None:
        self.out, self.shown = stream, False

    def show(self, text: str) -> None:
        self.out.write("\r\x1b[K" + text)
        self.out.flush()
        self.shown = True

    def clear(self) -> None:
        if self.shown:
            self.out.write("\r\x1b[K")
            self.out.flush()
            self.shown = False


class _Console(Sink):
    """Events on stdout: the status line cleared first; readable lines show times as seconds
    since the capture started (the events themselves keep epoch times)."""

    def __init__(self, inner: StdoutSink, status: _Status | None, *, sample_rate: int) -> None:
        self.inner, self.status, self.sr = inner, status, sample_rate

    def write(self, event: dict[str, Any]) -> None:
        if self.status is not None:
            self.status.clear()
        if not self.inner.json_lines and "start_sample" in event:
            event = {**event, "start": event["start_sample"] / self.sr,
                     "end": event["end_sample"] / self.sr}
        self.inner.write(event)

    def flush(self) -> None:
        self.inner.flush()


class _Metrics(RuntimeMetrics):
    """Prometheus metrics of one listen run (own registry, served on ``--metrics-port``): the
    runtime's, as the service exports them, plus the capture's."""

    def __init__(self, port: int) -> None:
        from prometheus_client import CollectorRegistry, Gauge, Histogram, start_http_server  # noqa: PLC0415

        super().__init__(CollectorRegistry())
        r = self.registry
        self.latency = Histogram("monitor_capture_to_score_seconds",
                                 "capture of a window's last sample to its score", registry=r,
                                 buckets=(0.05, 0.1, 0.15, 0.2, 0.3, 0.5, 0.7, 1.0, 2.0, 5.0))
        self.level = Gauge("monitor_input_level_dbfs", "RMS level of the latest window", registry=r)
        self.dropped = Gauge("monitor_input_dropped_blocks", "capture blocks dropped (queue full)", registry=r)
        self.overflows = Gauge("monitor_input_overflows", "PortAudio input overflows", registry=r)
        start_http_server(port, registry=r)


def run(args: argparse.Namespace) -> int:
    if args.threads:
        import torch  # noqa: PLC0415

        torch.set_num_threads(args.threads)
    d = decisions(args, streams=[args.stream], health=None if args.no_input_health else AudioHealthSpec())
    if args.input == "mic":
        resolve_device(args.device)  # a device error is reported before the model loads
    model = bind_condition(load_model(d.model, device=args.compute_device, threshold_override=d.threshold),
                           args.condition)
    sr = model.frontend.sample_rate
    mic = open_input(args, sample_rate=sr)
    tty = sys.stderr.isatty()
    status = _Status(sys.stderr) if tty else None
    sink = build_sinks({"jsonl": args.events},
                       extra=[_Console(StdoutSink(json_lines=args.json), status, sample_rate=sr)])
    runner = StreamRunner(model, sink, health=d.health, hysteresis=d.hysteresis,
                        keep_windows=bool(args.plot))
    metrics = _Metrics(args.metrics_port) if args.metrics_port else None
    windows_f = open(args.windows, "w", encoding="utf-8") if args.windows else None
    recorder = None
    thr = model.threshold.value
    state: dict[str, Any] = {"last_status": 0.0, "latest": None, "recorded": 0, "events": []}
    latency_all = LatencyStats()

    def on_chunk(chunk: AudioChunk) -> None:
        if recorder is not None:
            if chunk.start_sample > state["recorded"]:
                recorder.write(np.zeros(chunk.start_sample - state["recorded"], dtype=np.float32))
            recorder.write(chunk.samples)
            state["recorded"] = chunk.start_sample + len(chunk.samples)

    def on_window(w: WindowScore, lat: float | None) -> None:
        lv = runner.level(w.stream)
        level = lv.rms_dbfs if lv is not None and lv.end_sample == w.end_sample else None
        state["latest"] = (w, lat, level)
        if lat is not None:
            latency_all.add(lat)
        if windows_f is not None:
            windows_f.write(json.dumps({
                "stream": w.stream, "index": w.index, "start_sample": w.start_sample,
                "end_sample": w.end_sample, "score": w.score, "over": w.score > thr,
                "level_dbfs": None if level is None or not math.isfinite(level) else round(level, 2),
                "latency_s": None if lat is None else round(lat, 5)}) + "\n")
        if metrics is not None:
            metrics.window_scored(w.stream, model.version, w.score, thr)
            if lat is not None:
                metrics.latency.observe(lat)
            if level is not None and math.isfinite(level):
                metrics.level.set(level)
            metrics.dropped.set(mic.stats.dropped_blocks)
            metrics.overflows.set(mic.stats.overflows)
        show_status(w, lat, level)

    def show_status(w: WindowScore, lat: float | None, level: float | None) -> None:
        lvl = "  -inf" if level is None or not math.isfinite(level) else f"{level:6.1f}"
        n_open = runner.open_events()
        drops = mic.stats.dropped_blocks + mic.stats.overflows
        dead = runner.input_dead(w.stream)
        state_word = "DEAD" if dead else ("OVER" if w.score > thr else "ok  ")
        if status is not None:
            bar = "#" * min(20, int(20 * w.score / (2 * thr))) if thr > 0 else ""
            status.show(f"{args.stream}  level {lvl} dBFS  score {w.score:9.4g} / thr {thr:.4g} "
                        f"[{bar:20s}]  {state_word}  open events {n_open}"
                        f"  t={w.end_sample / sr:7.1f}s" + (f"  lat {1000 * lat:4.0f} ms" if lat else "")
                        + (f"  dropped {drops}" if drops else ""))
            return
        now = time.monotonic()
        if now - state["last_status"] >= args.status_every:
            state["last_status"] = now
            log.info("status", extra={"stream": w.stream, "t_s": round(w.end_sample / sr, 2),
                                      "level_dbfs": None if lvl.strip() == "-inf" else float(lvl),
                                      "score": round(w.score, 6), "threshold": round(thr, 6),
                                      "over": w.score > thr, "input_dead": dead,
                                      "open_events": n_open,
                                      "windows": latency_all.count or None,
                                      "latency_p50_ms": _ms(latency_all.quantile(0.5)),
                                      "latency_p99_ms": _ms(latency_all.quantile(0.99)),
                                      "dropped_blocks": mic.stats.dropped_blocks,
                                      "overflows": mic.stats.overflows})

    def on_events(events: list[dict[str, Any]]) -> None:
        state["events"].extend(events)
        if metrics is not None:
            for e in events:
                metrics.event(e)

    warm_up(model)
    old_term = signal.signal(signal.SIGTERM, lambda *_: mic.stop())
    # Ctrl-C must stop it even when started from a background job, which inherits SIGINT
    # ignored (Python keeps an inherited SIG_IGN); the loop turns KeyboardInterrupt into a stop.
    old_int = signal.signal(signal.SIGINT, signal.default_int_handler)
    t0 = time.time()
    try:
        mic.open()
        if args.record:
            import soundfile as sf  # noqa: PLC0415

            exact = mic.dtype == "int16" and mic.rate == sr
            recorder = sf.SoundFile(args.record, "w", samplerate=sr, channels=1,
                                    subtype="PCM_16" if exact else "FLOAT")
        log.info("listening", extra={"device": mic.device.name, "device_index": mic.device.index,
                                     "device_rate": mic.rate, "model_rate": sr, "stream": args.stream,
                                     "model_version": model.version, "threshold": round(thr, 6),
                                     "training_level_dbfs": runner.reference_dbfs})
        res = drive(mic, runner, sink=sink, on_chunk=on_chunk, on_window=on_window, on_events=on_events)
    finally:
        signal.signal(signal.SIGTERM, old_term)
        signal.signal(signal.SIGINT, old_int)
        mic.close()
        if status is not None:
            status.clear()
        sink.close()
        if windows_f is not None:
            windows_f.close()
        if recorder is not None:
            recorder.close()
    summary = {"stopped_by": res.stopped_by if res.stopped_by != "end-of-input" else
               ("duration" if args.duration else "stop"),
               "seconds": round(res.samples / sr, 3), "wall_s": round(time.time() - t0, 3),
               "windows": res.windows, "latency": res.latency.summary(),
               "events_opened": _count_open(res.events), "dropouts": res.dropouts,
               "capture": mic.stats.to_dict()}
    log.info("listen stopped", extra=summary)
    if args.plot:
        _plot(args.plot, runner, model, res.events, sr)
    return 0


def open_input(args: argparse.Namespace, *, sample_rate: int):
    """The live source ``--input`` names (``monitor.sources.LIVE``), not yet opened: built with
    the settings every live source takes and the listen options its ``listen_options`` names."""
    import importlib  # noqa: PLC0415

    module, _, name = LIVE[args.input].partition(":")
    cls = getattr(importlib.import_module(module), name)
    own = {opt: getattr(args, opt) for opt in getattr(cls, "listen_options", ())}
    return cls(sample_rate=sample_rate, stream=args.stream, machine=args.machine, block_ms=args.block_ms,
               max_samples=round(args.duration * sample_rate) if args.duration else None, **own)


def _ms(x: float | None) -> float | None:
    return None if x is None else round(1000 * x, 1)


def _count_open(events: list[dict[str, Any]]) -> dict[str, int]:
    out: dict[str, int] = {}
    for e in events:
        if e["status"] == "open":
            out[e.get("kind", "machine")] = out.get(e.get("kind", "machine"), 0) + 1
    return out


def _plot(path: str, runner: StreamRunner, model, events, sr: int) -> None:
    from monitor.evaluation import plots  # noqa: PLC0415
    from monitor.runtime.replay import window_series  # noqa: PLC0415

    streams = {r.summary.stream: window_series(r, sr) for r in runner.finished if r.windows}
    # Live events carry epoch times; the timeline is in seconds since the capture started.
    shown = [{**e, "start": e["start_sample"] / sr, "end": e["end_sample"] / sr}
             for e in events if e.get("kind", "machine") == "machine"]
    plots.timeline(path, streams=streams, threshold=model.threshold, events=shown,
                   title=f"listen: {model.version}")
    log.info("plot written", extra={"plot": path})
