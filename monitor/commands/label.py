"""``monitor label``: an operator marks an event as a true fault or a false alarm.

The record and the copied audio are ``monitor.training.labels``' (the web view writes the same);
``--list`` shows the events and whether their audio is still kept.
"""
from __future__ import annotations

import argparse
from pathlib import Path

from monitor.errors import DataError
from monitor.runtime.event_audio import find_event_audio
from monitor.training.labels import KINDS, LABELS, label_event, model_root, read_events

HELP = "label an event as a true fault or a false alarm (for ws-ae retraining), or --list events"


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("label", help=HELP, description=HELP)
    p.add_argument("events", metavar="EVENTS.jsonl", help="events file written by the jsonl sink")
    p.add_argument("--event-id", help="the event to label")
    p.add_argument("--as", dest="label", choices=KINDS,
                   help="fault = a true machine fault; normal = a false alarm")
    p.add_argument("--model", metavar="MODEL_DIR", help="model root; labels go to MODEL_DIR/labels.jsonl")
    p.add_argument("--labels", metavar="FILE", help="labels file (default MODEL_DIR/labels.jsonl)")
    p.add_argument("--audio", metavar="DIR", help="the event audio store "
                   "(default: event_audio/ beside EVENTS.jsonl)")
    p.add_argument("--note", default="", help="free text kept with the label")
    p.add_argument("--by", default="", help="who labels (default: the OS user)")
    p.add_argument("--list", action="store_true", help="list the events and their audio")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    events = Path(args.events)
    store = Path(args.audio) if args.audio else events.parent / "event_audio"
    if args.list:
        for eid, ev in read_events(events).items():
            kept = find_event_audio(store, eid)
            print(f"{eid}  {ev['status']:6s} {ev['stream']}  t={ev['start']:.2f}-{ev['end']:.2f}s  "
                  f"peak={ev.get('peak_score', 0):.4g}  audio={kept[0] if kept else '(not kept)'}")
        return 0
    if not args.event_id or not args.label:
        raise DataError("label needs --event-id ID and --as fault|normal (or --list)")
    if not args.labels and not args.model:
        raise DataError("say where labels go: --model MODEL_DIR (labels.jsonl beside the model) "
                        "or --labels FILE")
    labels = Path(args.labels) if args.labels else model_root(args.model) / LABELS
    rec = label_event(events=events, event_id=args.event_id, label=args.label, labels=labels,
                      audio_store=store, note=args.note, by=args.by)
    print(f"labelled {rec['event_id']} as {rec['label']} ({rec['stream']}, "
          f"t={rec['start']:.2f}-{rec['end']:.2f}s) -> {labels}")
    return 0
