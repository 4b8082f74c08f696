"""The sensor side of ``train``, ``replay`` and ``evaluate`` (CSV data, SKAB / NAB protocols).

Kept apart from the subcommand modules so that each of them only gains a hook: sensor
options are added to their parsers here and dispatched here.
"""
from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from monitor.alerting import HysteresisSpec
from monitor.errors import DataError
from monitor.commands.common import EpochProgress, fmt, print_json


def parse_params(items: list[str] | None) -> dict[str, Any]:
    """``--param key=value`` (JSON values: 0.3, 10, "max", true) -> dict."""
    out: dict[str, Any] = {}
    for item in items or []:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise DataError(f"--param {item!r}: expected KEY=VALUE")
        try:
            out[key] = json.loads(raw)
        except json.JSONDecodeError:
            out[key] = raw
    return out


def _hysteresis(text: str | None, config: str | None = None) -> HysteresisSpec:
    """``--hysteresis K,N,M``, else the ``alerting:`` of ``--config``, else the defaults."""
    if not text:
        if config:
            from monitor.config import load_config  # noqa: PLC0415

            return load_config(config).alerting.hysteresis()
        return HysteresisSpec()
    try:
        k, n, m = (int(v) for v in text.split(","))
        return HysteresisSpec(k, n, m)
    except ValueError as exc:
        raise DataError(f"--hysteresis {text!r}: expected K,N,M (open after K of the last N "
                        f"windows over, close after M under): {exc}") from None


def add_common(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("sensor data")
    g.add_argument("--time-column", help="sensor CSV: the time column (makes --data a sensor CSV file or folder)")
    g.add_argument("--channels", help="sensor CSV: comma-separated channel columns (default: all numeric)")


def add_replay_args(p: argparse.ArgumentParser) -> None:
    """``replay``'s sensor-only options."""
    p.add_argument("--event-store", metavar="DIR", help="sensor replay: keep each machine event's "
                   "grid rows as DIR/<event_id>.json, as the service does in sinks.event_audio "
                   "(default: that folder of --config, if it sets one)")


def _event_rows(args: argparse.Namespace, model, hysteresis: HysteresisSpec):
    """The event-rows store of a sensor replay: ``--event-store``, else ``--config``'s
    ``sinks.event_audio``; its bounds are the config's (or the defaults)."""
    from monitor.config import SinksConfig, load_config  # noqa: PLC0415
    from monitor.runtime.sensor_events import SensorEventSpec  # noqa: PLC0415

    config = getattr(args, "config", None)
    sinks = load_config(config).sinks if config else SinksConfig()
    return SensorEventSpec.from_sinks(sinks, model, hysteresis=hysteresis,
                                      folder=getattr(args, "event_store", None) or "")


def _add_scorer_args(g: argparse._ArgumentGroup) -> None:
    """How a sensor scorer is set up, for ``train`` and for the protocols' per-run training."""
    g.add_argument("--frames", type=int, help="sensor window length in steps (default: the scorer's "
                   "rule, from the training rows' dominant period)")
    g.add_argument("--train-stride", type=int, help="training windows this many steps apart (default: "
                   "the scorer's rule, a bounded number of windows per fit)")
    g.add_argument("--param", action="append", metavar="KEY=VALUE", help="scorer hyperparameter (repeatable)")


def add_train_args(p: argparse.ArgumentParser) -> None:
    add_common(p)
    g = p.add_argument_group("sensor training")
    _add_scorer_args(g)
    g.add_argument("--step", type=float, help="sensor grid step in seconds (default: median reading interval)")
    g.add_argument("--max-gap", type=float, help="seconds without readings that close the windows "
                   "and raise a gap event (default: 10 steps)")
    g.add_argument("--no-resample", action="store_true", help="use the rows as given (no grid)")


def is_sensor(args: argparse.Namespace) -> bool:
    return bool(getattr(args, "time_column", None))


def run_train(args: argparse.Namespace) -> int:
    from monitor.training.sensors import SENSOR_HOLDOUT, SENSOR_Q, SensorTrainOptions, train_sensors  # noqa: PLC0415

    opts = SensorTrainOptions(
        scorer=args.scorer, time_column=args.time_column,
        channels=args.channels.split(",") if args.channels else None, seed=args.seed, device=args.device,
        epochs=args.epochs, params=parse_params(args.param), frames=args.frames,
        train_stride=args.train_stride, step_s=args.step,
        max_gap_s=args.max_gap, resample=not args.no_resample,
        threshold_method=args.threshold_method,
        threshold_convention=getattr(args, "threshold_convention", None) or "dcase",
        threshold_q=SENSOR_Q if args.threshold_q is None else args.threshold_q,
        holdout=SENSOR_HOLDOUT if args.holdout is None else args.holdout)
    progress = EpochProgress(f"train {args.scorer}")
    try:
        folder, meta = train_sensors(args.data, args.out, opts, progress=progress)
    finally:
        progress.close()
    thr, tr, fe = meta["threshold"], meta["training"], meta["features"]
    print(f"model     {folder}")
    print(f"version   {meta['model_version']}")
    print(f"channels  {', '.join(fe['channels'])} (step {fe['step_s']:g} s, gap limit {fe['max_gap_s']:g} s)")
    print(f"trained   {len(tr['files'])} file(s), {tr['train_rows']} rows, {tr['fit']['n_windows']} windows "
          f"of {meta['input']['frames']} steps, {tr['fit']['epochs']} epochs, {tr['seconds']:.1f} s")
    print(f"threshold {thr['value']:.6g} ({thr['method']}/{thr['convention']}, q={fmt(thr['q'])}, "
          f"{thr['fitted_on']})")
    return 0


def run_replay(args: argparse.Namespace, model, *, hysteresis: HysteresisSpec = HysteresisSpec()) -> int:
    from monitor.runtime.sensors import SensorRunner  # noqa: PLC0415
    from monitor.sinks.factory import SinkContext, build_sinks  # noqa: PLC0415
    from monitor.sources.csv_sensors import CsvSensorSource, list_csv  # noqa: PLC0415

    spec = model.frontend.spec
    time_column = getattr(args, "time_column", None) or spec.time_column
    if not time_column:
        raise DataError("the model does not name its time column: pass --time-column")
    source = CsvSensorSource(list_csv(args.data), time_column=time_column, channels=list(spec.channels),
                             chunk_rows=64, realtime=args.realtime)
    with build_sinks({"stdout": True, "jsonl": args.events}, SinkContext(json_lines=args.json)) as sink:
        runner = SensorRunner(model, sink, keep_windows=True, hysteresis=hysteresis,
                              event_rows=_event_rows(args, model, hysteresis))
        for batch in source:
            runner.feed(batch.stream, batch.ts_s, batch.values, end_of_stream=batch.end_of_stream,
                        machine=batch.machine)
            if batch.end_of_stream:
                sink.flush()
        runner.close()
        sink.flush()
    out = sys.stderr if args.json else sys.stdout
    machine = [e for r in runner.finished for e in r.events if e["status"] == "open"]
    health = [e for e in runner.health_events if e["status"] == "open"]
    print(f"\n{'stream':40s} {'rows':>8s} {'windows':>8s} {'mean score':>11s} {'events':>7s}", file=out)
    for r in runner.finished:
        n_open = sum(e["status"] == "open" for e in r.events)
        print(f"{r.summary.stream[:40]:40s} {r.summary.samples:8d} {len(r.windows):8d} "
              f"{r.summary.clip_score:11.5g} {n_open:7d}", file=out)
    kinds: dict[str, int] = {}
    for e in health:
        kinds[e["kind"]] = kinds.get(e["kind"], 0) + 1
    print(f"{len(machine)} machine event(s), sensor-health events {kinds or 'none'}, threshold "
          f"{model.threshold.value:.5g}", file=out)
    if runner.event_rows is not None:
        print(f"event rows: {runner.event_rows.written} written to {runner.event_rows.folder}"
              + (f", {runner.event_rows.evicted} evicted" if runner.event_rows.evicted else ""), file=out)
    return 0


def add_evaluate_args(p: argparse.ArgumentParser) -> None:
    from monitor.training.sensors import SENSOR_Q  # noqa: PLC0415

    g = p.add_argument_group("sensor benchmarks (--protocol skab|nab train a model per run)")
    g.add_argument("--protocol", choices=("dcase", "skab", "nab"), default="dcase",
                   help="dcase: labelled clips with --model (default); skab / nab: sensor benchmarks")
    g.add_argument("--scorer", help="scorer to train per run/signal (skab, nab)")
    g.add_argument("--subset", default="artificialWithAnomaly", help="NAB subset (realKnownCause, ...)")
    _add_scorer_args(g)
    g.add_argument("--epochs", type=int, help="training epochs per run/signal (default: the scorer's "
                   "cap; training stops early on a time-ordered validation split)")
    g.add_argument("--threshold-q", type=float, help=f"gamma quantile (default {SENSOR_Q:g})")
    g.add_argument("--hysteresis", metavar="K,N,M", help="open after K of N windows over, close after M under")
    g.add_argument("--window-steps", type=int, help="alerting window in steps (mean of scores); "
                   "default skab 1, nab 1 %% of the signal (Orion's smoothing window)")
    g.add_argument("--hop-steps", type=int, help="alerting window hop in steps (nab; default 1)")
    g.add_argument("--overlap-q", action="store_true", help="overlapping alerting windows: read the "
                   "gamma at the quantile at which the hysteresis opens as often as at --threshold-q "
                   "on independent windows (fewer false alarms, fewer detections)")
    g.add_argument("--no-confirm", dest="confirm", action="store_false", help="overlapping alerting "
                   "windows (nab): raise every excursion over the threshold, not only those whose peak "
                   "stands 13 %% above it (telemanom's pruning, the default)")
    g.add_argument("--limit", type=int, help="first N runs/signals only (smoke runs)")
    g.add_argument("--seed", type=int, default=0)


def is_sensor_protocol(args: argparse.Namespace) -> bool:
    return getattr(args, "protocol", "dcase") in ("skab", "nab")


def run_evaluate(args: argparse.Namespace) -> int:
    from monitor.evaluation.timeseries import SensorEvalOptions, evaluate_nab, evaluate_skab  # noqa: PLC0415
    from monitor.training.sensors import SENSOR_Q  # noqa: PLC0415

    if not args.scorer:
        raise DataError(f"--protocol {args.protocol} trains a model per run: pass --scorer NAME")
    params = parse_params(args.param)
    if args.epochs is not None:
        params["epochs"] = args.epochs
    opts = SensorEvalOptions(scorer=args.scorer, params=params, frames=args.frames, seed=args.seed,
                             device=args.device,
                             threshold_q=SENSOR_Q if args.threshold_q is None else args.threshold_q,
                             window_steps=args.window_steps, hop_steps=args.hop_steps, overlap_q=args.overlap_q,
                             confirm=args.confirm, hysteresis=_hysteresis(args.hysteresis, getattr(args, "config", None)),
                             limit=args.limit, train_stride=args.train_stride)
    say = (lambda m: print(m, file=sys.stderr)) if args.format == "json" else print
    if args.protocol == "skab":
        res = evaluate_skab(args.data, opts, progress=say)
    else:
        res = evaluate_nab(args.data, args.subset, opts, progress=say)
    if args.format == "json":
        print_json(res)
        return 0
    if args.protocol == "skab":
        print(f"SKAB, {res['runs']} runs, scorer {res['scorer']} ({res['decision']})")
        print(f"{'':14s} {'F1':>6s} {'FAR %':>7s} {'MAR %':>7s}")
        print(f"{'ours ' + res['scorer']:14s} {res['f1']:6.3f} {fmt(res['far'], 2):>7s} {fmt(res['mar'], 2):>7s}")
        for key, name in (("anchor_rule", "Orion rule"), ("telemanom_rule", "telemanom rule"),
                          ("skab_rule", "SKAB rule")):
            a = res[key]
            print(f"{name:14s} {a['f1']:6.3f} {fmt(a['far'], 2):>7s} {fmt(a['mar'], 2):>7s}  (the anchor's decision "
                  f"rule on our scores, for comparison)")
        for name, pub in res["published"].items():
            print(f"{name:14s} {pub['f1']:6.2f} {fmt(pub['far'], 2):>7s} {fmt(pub['mar'], 2):>7s}  (published)")
        print(f"training {res['fit_seconds_per_run']:.1f} s per run")
    else:
        print(f"NAB {res['subset']}, {res['signals']} signals, scorer {res['scorer']} ({res['decision']})")
        print(f"overlap-segment F1 {res['f1']:.3f}  precision {res['precision']:.3f}  recall "
              f"{res['recall']:.3f}  (tp {res['tp']} fp {res['fp']} fn {res['fn']})")
        for key in ("anchor_rule", "telemanom_rule"):
            a = res[key]
            print(f"anchor rule, for comparison ({a['rule']}): F1 {a['f1']:.3f}  precision "
                  f"{a['precision']:.3f}  recall {a['recall']:.3f}")
        for name, f1 in (res["published_orion_artificial"] or {}).items():
            print(f"  Orion 0.7.1 {name:12s} F1 {f1:.3f} (published)")
        print(f"training {res['fit_seconds_per_signal']:.1f} s per signal")
    return 0
