"""``monitor demo``: the whole story on synthetic machines, with nothing to download.

Synthesises a small factory (two machines), trains an autoencoder per machine, evaluates it,
replays a stream with injected faults through the live pipeline, prints the events and writes
plots.
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from workers.model import load_model

from ..evaluation import evaluate_audio
from ..replay import replay, window_series
from ..sinks import FanOut, JsonlSink, StdoutSink
from ..synth import inject_fault, machine_sound, write_factory
from ..training import TrainOptions, train_audio
from .common import EpochProgress, fmt

HELP = "run the whole pipeline on synthetic machines: train, evaluate, replay with faults, plot"
MACHINES = {"pump": 110.0, "fan": 190.0}


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("demo", help=HELP, description=HELP)
    p.add_argument("--out", default="demo-out", help="folder for data, models, events and plots")
    p.add_argument("--epochs", type=int, default=40)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="auto")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    import soundfile as sf  # noqa: PLC0415

    t0 = time.perf_counter()
    out = Path(args.out)
    print(f"1. synthesising a factory of {len(MACHINES)} machines in {out / 'data'}")
    folders = write_factory(out / "data", machines=MACHINES, normal_clips=30, test_normal=6,
                             test_faulty=6, seed=args.seed)
    models = {}
    for name, f in folders.items():
        print(f"2. training an autoencoder for '{name}' on {f['train']}")
        progress = EpochProgress(f"train {name}")
        folder, meta = train_audio(f["train"], out / "models" / name,
                                   TrainOptions(seed=args.seed, epochs=args.epochs, device=args.device,
                                                params={"batch_size": 128}, holdout=0.2),
                                   progress=progress)
        progress.close()
        models[name] = folder
        print(f"   model {folder.name}, threshold {meta['threshold']['value']:.4g} "
              f"({meta['training']['seconds']:.1f} s)")
        res = evaluate_audio(load_model(folder, device=args.device), f["test"])
        print(f"3. evaluated on {res['clips']} test clips: AUC {fmt(res['auc'])}, pAUC {fmt(res['pauc'])}, "
              f"at threshold precision {fmt(res['precision'])} recall {fmt(res['recall'])} "
              f"FPR {fmt(res['fpr'])}")

    name = "pump"
    sr = 16000
    stream = machine_sound(seconds=16.0, f0=MACHINES[name], seed=args.seed + 999)
    stream = inject_fault(stream, kind="clicks", start_s=5.0, end_s=8.0, seed=1)
    stream = inject_fault(stream, kind="harmonic", start_s=11.0, end_s=13.0, seed=2)
    wav = out / "data" / "pump-line3-live.wav"
    sf.write(wav, stream, sr, subtype="PCM_16")
    print(f"4. replaying {wav.name} (16 s; clicks at 5-8 s, a resonance at 11-13 s) in 100 ms chunks:")
    model = load_model(models[name], device=args.device)
    events_path = out / "events.jsonl"
    events_path.unlink(missing_ok=True)
    with FanOut([StdoutSink(), JsonlSink(events_path)]) as sink:
        res = replay(model, wav, sink=sink, chunk_ms=100)
    r = res.streams[0]
    from .. import plots  # noqa: PLC0415

    plot = plots.timeline(out / "timeline.png", streams={r.summary.stream: window_series(r, sr)},
                          threshold=model.threshold, events=res.events,
                          title=f"{name}: window scores, threshold and events")
    logmel = model.frontend.clip_features(stream).cpu().numpy()
    spans = [(e["start"], e["end"]) for e in res.events if e["status"] == "closed"]
    spec = plots.spectrogram(out / "spectrogram.png", logmel=logmel, hop_s=model.frontend.frame_hop / sr,
                             marked=spans, title=f"{wav.name}: log-mel, anomaly events shaded")
    opened = sum(e["status"] == "open" for e in res.events)
    print(f"5. {opened} event(s); events in {events_path}; plots {plot} and {spec}")
    print(f"done in {time.perf_counter() - t0:.0f} s")
    return 0 if opened else 1
