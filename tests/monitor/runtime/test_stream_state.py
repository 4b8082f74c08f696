"""A stream taken over from a checkpointed state raises exactly the events of an uninterrupted run.

The service writes ``StreamRunner.stream_state`` to its state topic at every commit and a
restarted worker feeds the stream again from ``restore_point``: checked here without Kafka, on
a long fault (an event open across the checkpoint) and on a dead input (an input-health
condition open across it), for checkpoints at many points of the stream.
"""
from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from monitor.runtime.runner import StreamRunner
from monitor.sources.base import AudioChunk
from monitor.synth import inject_fault, machine_sound
from workers.input_health import AudioHealthSpec
from workers.model import load_model

SR = 16000
CHUNK = 1600  # 0.1 s, as producers send


def _chunks(x: np.ndarray, stream: str) -> list[AudioChunk]:
    return [AudioChunk(stream, x[i:i + CHUNK], SR, i) for i in range(0, len(x), CHUNK)]


def _run(runner: StreamRunner, chunks: list[AudioChunk]) -> list[dict]:
    events = []
    for c in chunks:
        runner.push(c)
        events += runner.flush()
    return events


def _uninterrupted(model, chunks, stream) -> list[dict]:
    r = StreamRunner(model, health=AudioHealthSpec())
    return _run(r, chunks) + r.end_stream(stream)


def _taken_over(model, chunks, stream, at: int, *, other_model=None) -> list[dict]:
    """Run to chunk ``at``, checkpoint, and go on in a fresh runner from the restore point."""
    first = StreamRunner(model, health=AudioHealthSpec())
    before = _run(first, chunks[:at])
    state = json.loads(json.dumps(first.stream_state(stream)))  # through the wire format
    point = first.restore_point(stream)
    assert point == state["from"]
    second = StreamRunner(other_model or model, health=AudioHealthSpec())
    after = second.restore_stream(stream, state, sample_rate=SR)
    # re-read from the chunk holding the restore point, as the consumer does from the commit
    again = [c for c in chunks if c.start_sample + len(c.samples) > point]
    assert again[0].start_sample <= point
    return before + after + _run(second, again) + second.end_stream(stream)


def _key(e: dict) -> tuple:
    return (e["event_id"], e["status"], e["kind"], e["start_sample"], e["end_sample"], e.get("windows"),
            e.get("closed_by"))


@pytest.fixture(scope="module")
def model(trained_model):
    return load_model(trained_model, device="cpu")


def test_open_event_carried_across_any_checkpoint(model):
    x = inject_fault(machine_sound(seconds=9.0, f0=110.0, seed=3), kind="harmonic", start_s=2.0, end_s=9.0)
    chunks = _chunks(x, "pump-long")
    want = _uninterrupted(model, chunks, "pump-long")
    assert [e["status"] for e in want if e["kind"] == "machine"] == ["open", "closed"], want
    for at in (5, 23, 24, 25, 37, 50, 61, 80):
        got = _taken_over(model, chunks, "pump-long", at)
        assert [_key(e) for e in got] == [_key(e) for e in want], at
        peaks = [e["peak_score"] for e in got if "peak_score" in e]
        assert peaks == pytest.approx([e["peak_score"] for e in want if "peak_score" in e], rel=1e-5)
        # the explanation is carried exactly (its terms travel as float64 bytes)
        assert [e.get("explanation") for e in got] == [e.get("explanation") for e in want]


def test_input_health_condition_carried_across_a_checkpoint(model):
    x = machine_sound(seconds=8.0, f0=110.0, seed=4)
    x[int(2.5 * SR):int(5.5 * SR)] = 0.0  # a dead microphone for 3 s
    chunks = _chunks(x, "pump-dead")
    want = _uninterrupted(model, chunks, "pump-dead")
    assert [e["kind"] for e in want].count("dead-input") == 2, want
    for at in (31, 40, 47):
        got = _taken_over(model, chunks, "pump-dead", at)
        assert [_key(e) for e in got] == [_key(e) for e in want], at


def test_another_model_version_closes_the_open_event_and_starts_afresh(model, trained_model, tmp_path):
    version = trained_model / (trained_model / "latest").read_text().strip()
    shutil.copytree(version, tmp_path / "v-next")
    meta = json.loads((tmp_path / "v-next" / "meta.json").read_text())
    meta["model_version"] += "-next"  # the same weights as a retrained version would carry
    (tmp_path / "v-next" / "meta.json").write_text(json.dumps(meta))
    other = load_model(tmp_path / "v-next", device="cpu")
    assert other.version != model.version
    x = inject_fault(machine_sound(seconds=9.0, f0=110.0, seed=3), kind="harmonic", start_s=2.0, end_s=9.0)
    chunks = _chunks(x, "pump-v")
    got = _taken_over(model, chunks, "pump-v", 50, other_model=other)
    machine = [(e["model_version"], e["status"], e.get("closed_by")) for e in got if e["kind"] == "machine"]
    assert machine[:2] == [(model.version, "open", None), (model.version, "closed", "model-reload")], machine
    # the fault goes on: the new version opens its own event, once
    assert [m for m in machine[2:] if m[1] == "open"] == [(other.version, "open", None)], machine


def test_a_stream_unknown_to_the_runner_has_no_state(model):
    r = StreamRunner(model)
    assert r.stream_state("nobody") is None and r.restore_point("nobody") is None
