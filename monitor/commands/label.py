"""``monitor label``: an operator marks an event as a true fault or a false alarm.

The label goes to ``MODEL_ROOT/labels.jsonl`` (one JSON line per label; the last label of an
event wins) and the event's audio, kept by the service's event audio store, is copied to
``MODEL_ROOT/labelled/<event_id>.wav`` so the store's eviction can never take audio a label
needs. ``monitor train --scorer ws-ae --from-model MODEL_ROOT --labels MODEL_ROOT/labels.jsonl``
then retrains from them. ``--list`` shows the events and whether their audio is still kept.
"""
from __future__ import annotations

import argparse
import getpass
import json
import shutil
import time
from pathlib import Path
from typing import Any

from monitor.errors import DataError
from monitor.runtime.event_audio import find_event_audio

HELP = "label an event as a true fault or a false alarm (for ws-ae retraining), or --list events"
LABELS = "labels.jsonl"
LABELLED = "labelled"


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("label", help=HELP, description=HELP)
    p.add_argument("events", metavar="EVENTS.jsonl", help="events file written by the jsonl sink")
    p.add_argument("--event-id", help="the event to label")
    p.add_argument("--as", dest="label", choices=("fault", "normal"),
                   help="fault = a true machine fault; normal = a false alarm")
    p.add_argument("--model", metavar="MODEL_DIR", help="model root; labels go to MODEL_DIR/labels.jsonl")
    p.add_argument("--labels", metavar="FILE", help="labels file (default MODEL_DIR/labels.jsonl)")
    p.add_argument("--audio", metavar="DIR", help="the event audio store "
                   "(default: event_audio/ beside EVENTS.jsonl)")
    p.add_argument("--note", default="", help="free text kept with the label")
    p.add_argument("--by", default="", help="who labels (default: the OS user)")
    p.add_argument("--list", action="store_true", help="list the events and their audio")
    p.set_defaults(run=run)


def read_events(path: Path) -> dict[str, dict[str, Any]]:
    """The last record of each machine event (a closed record supersedes its open one)."""
    if not path.is_file():
        raise DataError(f"{path}: events file does not exist")
    out: dict[str, dict[str, Any]] = {}
    for n, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        try:
            ev = json.loads(line)
            eid = ev["event_id"]
        except (json.JSONDecodeError, KeyError, TypeError) as exc:
            raise DataError(f"{path}:{n}: not an anomaly event ({exc})") from None
        if ev.get("kind", "machine") == "machine":
            out[eid] = ev
    return out


def model_root(path: str | Path) -> Path:
    p = Path(path)
    return p.parent if (p / "meta.json").is_file() else p


def label_event(*, events: str | Path, event_id: str, label: str, labels: str | Path,
                audio_store: str | Path, note: str = "", by: str = "") -> dict[str, Any]:
    """Record one label and copy its audio beside the labels file; returns the record."""
    events = Path(events)
    found = read_events(events)
    ev = found.get(event_id)
    if ev is None:
        raise DataError(f"{events}: no machine event with event_id {event_id!r} "
                        f"({len(found)} events; see `monitor label {events} --list`)")
    return write_label(ev, label=label, labels=labels, audio_store=audio_store, note=note, by=by)


def write_label(ev: dict[str, Any], *, label: str, labels: str | Path, audio_store: str | Path,
                note: str = "", by: str = "") -> dict[str, Any]:
    """The label record of machine event ``ev`` (who, when), appended to ``labels``, with the
    event's audio copied beside it; ``monitor label`` and the web view both write through here."""
    event_id = ev["event_id"]
    if label not in ("fault", "normal"):
        raise DataError(f"label {label!r}: expected fault or normal")
    kept = find_event_audio(audio_store, event_id)
    if kept is None:
        raise DataError(f"{audio_store}: no audio kept for event {event_id} (never stored, or "
                        "evicted: raise the store's max size to keep more)")
    labels = Path(labels)
    dest_dir = labels.parent / LABELLED
    dest_dir.mkdir(parents=True, exist_ok=True)
    dest = dest_dir / f"{event_id}.wav"
    shutil.copyfile(kept[0], dest)
    rec = {"event_id": event_id, "label": label, "audio": f"{LABELLED}/{dest.name}",
           "stream": ev.get("stream"), "machine": ev.get("machine"), "start": ev.get("start"),
           "end": ev.get("end"), "model_version": ev.get("model_version"),
           "peak_score": ev.get("peak_score"), "audio_complete": kept[1].get("complete"),
           "note": note, "labelled_by": by or default_labeller(),
           "labelled_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    with open(labels, "a", encoding="utf-8") as f:
        f.write(json.dumps(rec) + "\n")
    return rec


def default_labeller() -> str:
    """Who labels when nobody says: the OS user running the command."""
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


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
