"""Operator labels: the records ``monitor label`` and the web view write, and retraining reads.

A label goes to ``MODEL_ROOT/labels.jsonl`` (one JSON line per label; the last label of an
event wins) and the event's audio, kept by the service's event audio store, is copied to
``MODEL_ROOT/labelled/<event_id>.wav`` so the store's eviction can never take audio a label
needs. ``monitor train --scorer ws-ae --from-model MODEL_ROOT --labels MODEL_ROOT/labels.jsonl``
then retrains from them (``monitor.training.retrain``).
"""
from __future__ import annotations

import getpass
import json
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from monitor.errors import DataError
from monitor.runtime.event_audio import find_event_audio

LABELS = "labels.jsonl"
LABELLED = "labelled"
KINDS = ("fault", "normal")


def json_records(path: Path, *, what: str, keys: tuple[str, ...]) -> Iterator[tuple[int, dict[str, Any]]]:
    """(line number, record) for each non-blank line of ``path``; a line that is not a JSON
    object holding ``keys`` is a ``DataError`` naming the file and line."""
    for n, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
            missing = [k for k in keys if k not in rec]
        except (json.JSONDecodeError, TypeError) as exc:
            raise DataError(f"{path}:{n}: not {what} ({exc})") from None
        if not isinstance(rec, dict) or missing:
            raise DataError(f"{path}:{n}: not {what} (no {', '.join(missing) or 'JSON object'})")
        yield n, rec


def read_events(path: Path) -> dict[str, dict[str, Any]]:
    """The last record of each machine event (a closed record supersedes its open one)."""
    if not path.is_file():
        raise DataError(f"{path}: events file does not exist")
    return {ev["event_id"]: ev for _, ev in json_records(path, what="an anomaly event", keys=("event_id",))
            if ev.get("kind", "machine") == "machine"}


def read_labels(path: str | Path) -> dict[str, dict[str, Any]]:
    """The labels file: the last label per event wins."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: labels file does not exist (write it with `monitor label`)")
    out: dict[str, dict[str, Any]] = {}
    for n, rec in json_records(path, what="a label record", keys=("event_id", "label")):
        if rec["label"] not in KINDS:
            raise DataError(f"{path}:{n}: label must be 'fault' or 'normal', got {rec['label']!r}")
        out[rec["event_id"]] = rec
    if not out:
        raise DataError(f"{path}: no labels")
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
    if label not in KINDS:
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
