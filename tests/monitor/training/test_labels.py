"""The label records (``monitor.training.labels``): what ``monitor label`` and the web view write
and retraining reads; a bad line is an error naming the file and line, never skipped."""
from __future__ import annotations

import json

import pytest

from monitor.errors import DataError
from monitor.training.labels import read_events, read_labels


def _lines(path, *records) -> None:
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in records))


def test_read_events_keeps_the_last_record_of_each_machine_event(tmp_path):
    p = tmp_path / "events.jsonl"
    _lines(p, {"event_id": "a", "status": "open"}, "", {"event_id": "g", "kind": "gap"},
           {"event_id": "a", "status": "closed", "kind": "machine"})
    assert read_events(p) == {"a": {"event_id": "a", "status": "closed", "kind": "machine"}}


@pytest.mark.parametrize("bad", ["{not json", json.dumps([1, 2]), json.dumps({"status": "open"}), "7"])
def test_a_line_that_is_no_event_names_file_and_line(tmp_path, bad):
    p = tmp_path / "events.jsonl"
    _lines(p, {"event_id": "a"}, bad)
    with pytest.raises(DataError, match=r"events.jsonl:2: not an anomaly event"):
        read_events(p)


def test_read_labels_last_wins_and_refuses_unknown_labels_and_empty_files(tmp_path):
    p = tmp_path / "labels.jsonl"
    _lines(p, {"event_id": "a", "label": "fault"}, {"event_id": "a", "label": "normal"})
    assert read_labels(p)["a"]["label"] == "normal"
    _lines(p, {"event_id": "a", "label": "maybe"})
    with pytest.raises(DataError, match=r"labels.jsonl:1: label must be 'fault' or 'normal'"):
        read_labels(p)
    _lines(p, {"event_id": "a"})
    with pytest.raises(DataError, match=r"labels.jsonl:1: not a label record \(no label\)"):
        read_labels(p)
    p.write_text("\n")
    with pytest.raises(DataError, match="no labels"):
        read_labels(p)
    with pytest.raises(DataError, match="labels file does not exist"):
        read_labels(tmp_path / "missing.jsonl")
