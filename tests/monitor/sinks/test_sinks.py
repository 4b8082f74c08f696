"""Sinks: the factory every command builds them with, and the file and console sinks."""
from __future__ import annotations

import io
import json

import pytest

from monitor.alerting import make_event
from monitor.sinks.factory import SinkContext, build_sinks
from monitor.sinks.jsonl import JsonlSink
from monitor.sinks.stdout import StdoutSink


def _event() -> dict:
    return make_event(status="open", kind="dead-input", stream="line3/pump-02/mic0", machine="pump",
                      scorer="ae", model_version="v1", start_sample=16000, end_sample=32000,
                      sample_rate=16000, detail="digital silence")


def test_factory_builds_what_the_settings_switch_on(tmp_path):
    path = tmp_path / "sub" / "events.jsonl"
    out = io.StringIO()
    sink = build_sinks({"kafka": True, "jsonl": str(path), "stdout": False},  # no producer: no Kafka sink
                       SinkContext(json_lines=True), extra=[StdoutSink(json_lines=True, stream=out)])
    assert [type(s) for s in sink.sinks] == [JsonlSink, StdoutSink]
    with sink:
        sink.write(_event())
    assert json.loads(path.read_text())["stream"] == "line3/pump-02/mic0"
    assert json.loads(out.getvalue())["kind"] == "dead-input"
    assert build_sinks({"jsonl": "", "stdout": False}).sinks == []
    with pytest.raises(KeyError):
        build_sinks({"carrier-pigeon": True})


def test_jsonl_appends_and_a_closed_sink_flushes_nothing(tmp_path):
    path = tmp_path / "events.jsonl"
    for _ in range(2):
        s = JsonlSink(path)
        s.write(_event())
        s.close()
        s.flush()  # after close: no error
    assert len(path.read_text().splitlines()) == 2


def test_stdout_lines_are_readable_or_json():
    out = io.StringIO()
    StdoutSink(stream=out).write(_event())
    line = out.getvalue()
    assert line.startswith("[OPEN  ] line3/pump-02/mic0  dead-input") and "digital silence" in line
