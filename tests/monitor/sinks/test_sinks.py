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


class _Future:
    def __init__(self, error: Exception | None = None) -> None:
        self.exception = error

    def failed(self) -> bool:
        return self.exception is not None


class _Producer:
    """kafka-python's send/flush surface; ``fail`` = the next sends' futures fail."""

    def __init__(self, fail: bool = False) -> None:
        self.fail, self.sent, self.flushes = fail, [], 0

    def send(self, topic, *, key, value, headers):
        self.sent.append((topic, key, value, headers))
        return _Future(RuntimeError("broker gone") if self.fail else None)

    def flush(self):
        self.flushes += 1


def test_kafka_sinks_keep_failed_sends_and_send_them_again_on_a_new_producer():
    from monitor.sinks.dead_letter import DeadLetterSink
    from monitor.sinks.kafka import KafkaSink, SinkError

    old, new = _Producer(fail=True), _Producer()
    events, dlq = KafkaSink(old, "ev"), DeadLetterSink(old, "dlq", max_value_bytes=4)
    events.write(_event())
    dlq.send(key=b"k", value=b"too long", headers=[("seq", b"3")], error="bad-json", detail="x",
             topic="audio", partition=1, offset=42)
    with pytest.raises(SinkError, match=r"events topic ev: 1 send\(s\) failed \(broker gone\)"):
        events.flush()
    with pytest.raises(SinkError, match=r"dead-letter topic dlq: 1 send\(s\) failed"):
        dlq.flush()
    assert events.resend(new) == 1 and dlq.resend(new) == 1
    events.flush()
    dlq.flush()  # the new producer acknowledged both: nothing left to raise
    (t1, k1, v1, h1), (t2, k2, v2, h2) = new.sent
    assert (t1, k1, h1) == ("ev", b"line3/pump-02/mic0", None) and json.loads(v1)["kind"] == "dead-input"
    assert (t2, k2, v2) == ("dlq", b"k", None)  # the value over the bound is left out, its size said
    assert dict(h2)["source_offset"] == b"42" and dict(h2)["value_omitted_bytes"] == b"8"
    assert new.sent[0][1:3] == old.sent[0][1:3] and events.resend(new) == 0


def test_live_events_read_in_utc_replayed_ones_in_seconds():
    """A live stream's times are its capture clock (seconds since the epoch): printed as UTC,
    not as t=1796658182.00s; a replayed file's stay offsets into it."""
    from monitor.sinks.stdout import describe

    ev = {**_event(), "start": 1796658182.0, "end": 1796658184.5}
    assert "2026-12-07 15:43:02.000-15:43:04.500 UTC" in describe(ev)
    ev = {**_event(), "start": 1796687999.5, "end": 1796688001.0}  # across midnight: the date again
    assert "2026-12-07 23:59:59.500-2026-12-08 00:00:01.000 UTC" in describe(ev)
    assert "t=1.00-2.00s" in describe(_event())
