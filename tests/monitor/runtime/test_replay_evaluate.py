"""Replay (chunked streaming) and evaluate (whole clips) score the same audio identically."""
from __future__ import annotations

import numpy as np
import pytest

from monitor.evaluation.dcase import evaluate_audio
from monitor.runtime.replay import replay
from monitor.sinks import JsonlSink
from workers.model import load_model
from workers.offline import score_clips


def test_replay_scores_equal_evaluate_scores(trained_model, factory):
    model = load_model(trained_model, device="cpu")
    ev = evaluate_audio(model, factory["test"])
    offline = {r.name: r for r in ev["_results"]}
    for chunk_ms in (100, 37.5, 1000):
        res = replay(model, factory["test"], chunk_ms=chunk_ms)
        assert len(res.streams) == len(offline)
        for r in res.streams:
            ref = offline[r.summary.stream + ".wav"]
            assert r.summary.clip_score == pytest.approx(ref.clip_score, rel=1e-5)
            got = np.array([w.score for w in r.windows])
            want = np.array([w.score for w in ref.windows])
            assert got.shape == want.shape and len(got) > 0
            np.testing.assert_allclose(got, want, rtol=1e-5)


def test_faults_are_detected_and_normals_mostly_pass(trained_model, factory):
    model = load_model(trained_model, device="cpu")
    ev = evaluate_audio(model, factory["test"])
    assert ev["auc"] >= 0.9, ev["auc"]
    assert ev["recall"] >= 0.75 and ev["fpr"] <= 0.5, (ev["recall"], ev["fpr"])
    assert set(ev) >= {"clips", "auc", "pauc", "threshold", "precision", "recall", "f1", "fpr"}


def test_replay_events_are_deterministic_and_written(trained_model, factory, tmp_path):
    model = load_model(trained_model, device="cpu")
    path = tmp_path / "ev.jsonl"
    with JsonlSink(path) as sink:
        a = replay(model, factory["test"], sink=sink, chunk_ms=100)
    b = replay(model, factory["test"], chunk_ms=250)
    ids_a = sorted(e["event_id"] for e in a.events)
    assert ids_a and ids_a == sorted(e["event_id"] for e in b.events)
    assert len(path.read_text().splitlines()) == len(a.events)
    faulty = {e["stream"] for e in a.events}
    assert any("anomaly" in s for s in faulty)


def test_batched_clips_equal_one_at_a_time(trained_model, factory):
    import soundfile as sf
    from pathlib import Path

    model = load_model(trained_model, device="cpu")
    clips = [(p.name, sf.read(p, dtype="float32")[0]) for p in sorted(Path(factory["test"]).glob("*.wav"))]
    together = score_clips(model, clips, clips_per_batch=8)
    alone = score_clips(model, clips, clips_per_batch=1)
    for a, b in zip(together, alone):
        assert a.clip_score == pytest.approx(b.clip_score, rel=1e-5)


@pytest.mark.parametrize("alerting", ["k: 1\n  n: 1\n  m: 1", "k: 3\n  n: 3\n  m: 5"])
def test_evaluate_and_replay_with_one_config_flag_the_same_clips(trained_model, factory, tmp_path,
                                                                 capsys, alerting):
    """``--config``: evaluate's clip decisions are replay's (an open machine event in the clip),
    under the config's alerting, and the model comes from its routes."""
    import json

    from monitor.cli import main

    cfg = tmp_path / "service.yaml"
    cfg.write_text(f"models:\n  - streams: '*'\n    model: {trained_model}\nalerting:\n  {alerting}\n"
                   "  input_health: false\n")
    assert main(["evaluate", "--config", str(cfg), "--data", str(factory["test"]), "--format", "json",
                 "--device", "cpu"]) == 0
    rows = json.loads(capsys.readouterr().out)["rows"]
    events = tmp_path / "events.jsonl"
    assert main(["replay", "--config", str(cfg), "--data", str(factory["test"]), "--events", str(events),
                 "--device", "cpu"]) == 0
    opened = {e["stream"] for e in map(json.loads, events.read_text().splitlines())
              if e["status"] == "open" and e["kind"] == "machine"}
    assert {r["clip"][:-4] for r in rows if r["flagged"]} == opened
    assert 0 < len(opened) < len(rows)  # some flagged, some not: the comparison means something
