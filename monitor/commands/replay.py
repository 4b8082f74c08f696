"""``monitor replay``: recorded clips through the streaming path, events as they happen."""
from __future__ import annotations

import argparse
import json
import sys

from workers.input_health import AudioHealthSpec
from workers.conditioned import bind_condition
from workers.model import load_model

from monitor.errors import DataError
from monitor.runtime.replay import replay, window_series
from monitor.sinks.factory import SinkContext, build_sinks
from monitor.commands import sensor_options
from monitor.commands.decisions import add_config_option, decisions
from monitor.datasets import list_clips, parse_channel
from monitor.commands.common import FileProgress, add_channel_arg, threshold_arg

HELP = "replay recorded audio through the live pipeline, printing anomaly events"


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("replay", help=HELP, description=HELP)
    p.add_argument("--model", metavar="MODEL_DIR", help="the model (or take it from --config's routes)")
    p.add_argument("--data", required=True, metavar="DIR_OR_FILE")
    p.add_argument("--realtime", action="store_true", help="pace at real time (default: as fast as possible)")
    p.add_argument("--chunk-ms", type=float, default=100.0, help="chunk size pushed through the pipeline")
    p.add_argument("--concat", action="store_true",
                   help="play a folder's clips back to back as one stream per machine/section")
    p.add_argument("--events", metavar="FILE.jsonl", help="also append events to this JSON-lines file")
    p.add_argument("--json", action="store_true", help="print events as JSON lines")
    p.add_argument("--windows", metavar="FILE.jsonl",
                   help="write every window's score (stream, index, start_sample, score) as JSON lines")
    p.add_argument("--input-health", action="store_true",
                   help="run the live input checks too (clipping, dead input kept out of alerting), "
                        "as `monitor listen` does (with --config: as its alerting.input_health says)")
    add_config_option(p)
    p.add_argument("--plot", metavar="FILE.png", help="score timeline with threshold and events")
    p.add_argument("--device", default="auto")
    p.add_argument("--condition", help="the operating condition of the audio, for a model that "
                   "knows several (condition-clf), e.g. section_00_pat_01")
    p.add_argument("--threshold", type=threshold_arg, help="override the stored threshold for this run")
    add_channel_arg(p)
    sensor_options.add_common(p)
    sensor_options.add_replay_args(p)
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    streams = [c.path.stem for c in list_clips(args.data)] if args.config and not args.model else []
    d = decisions(args, streams=streams, health=AudioHealthSpec() if args.input_health else None)
    model = bind_condition(load_model(d.model, device=args.device, threshold_override=d.threshold),
                           args.condition)
    if getattr(model.frontend, "kind", None) == "sensor":  # a sensor model replays CSV files
        return sensor_options.run_replay(args, model, hysteresis=d.hysteresis)
    if args.event_store:
        raise DataError("--event-store keeps a sensor model's event rows; an audio replay keeps no "
                        "event audio (the service does, in sinks.event_audio)")
    bar = FileProgress("replay")  # tqdm itself: bool(bar) raises when it has no total
    windows_f = open(args.windows, "w", encoding="utf-8") if args.windows else None

    def on_window(w, latency_s) -> None:
        if windows_f is not None:
            windows_f.write(json.dumps({"stream": w.stream, "index": w.index, "start_sample": w.start_sample,
                                        "end_sample": w.end_sample, "score": w.score,
                                        "latency_s": latency_s}) + "\n")

    try:
        with build_sinks({"stdout": True, "jsonl": args.events}, SinkContext(json_lines=args.json)) as sink:
            res = replay(model, args.data, sink=sink, chunk_ms=args.chunk_ms, realtime=args.realtime,
                         concat=args.concat, progress=bar,
                         health=d.health, hysteresis=d.hysteresis, on_window=on_window,
                         channel=parse_channel(args.channel))
    finally:
        bar.close()
        if windows_f is not None:
            windows_f.close()
    out = sys.stderr if args.json else sys.stdout
    print(f"\n{'stream':40s} {'seconds':>8s} {'windows':>8s} {'clip score':>11s} {'events':>7s}", file=out)
    for r in res.streams:
        n_open = sum(e["status"] == "open" for e in r.events)
        print(f"{r.summary.stream[:40]:40s} {r.summary.samples / res.sample_rate:8.1f} "
              f"{len(r.windows):8d} {r.summary.clip_score:11.5g} {n_open:7d}", file=out)
    opened = sum(e["status"] == "open" for e in res.events)
    print(f"{len(res.streams)} stream(s), {opened} event(s) opened, threshold "
          f"{model.threshold.value:.5g}; files skipped: {dict(res.read.skipped) or 'none'}", file=out)
    lat = res.drive.latency.summary() if res.drive is not None else {}
    if lat.get("windows"):
        print(f"capture-to-score latency over {lat['windows']} windows: p50 {lat['p50_ms']:.1f} ms, "
              f"p99 {lat['p99_ms']:.1f} ms", file=out)
    if args.plot:
        from monitor.evaluation import plots  # noqa: PLC0415

        shown = sorted(res.streams, key=lambda r: -len(r.events))[:8]
        plots.timeline(args.plot, streams={r.summary.stream: window_series(r, res.sample_rate) for r in shown},
                       threshold=model.threshold, events=res.events, title=f"replay: {model.version}")
        print(f"plot {args.plot}", file=out)
    return 0
