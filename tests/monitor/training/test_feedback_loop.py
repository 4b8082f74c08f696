"""The operator-feedback loop end to end on synthetic audio: a running runner raises an event,
the operator labels it (`monitor label`), the model is retrained from the label (`monitor train
--from-model`), the running runner hot-loads the new version without losing a window, and a
weaker instance of the labelled fault, missed before, is now detected."""
from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from models.artifacts import LATEST, set_latest
from monitor.cli import main
from monitor.runtime.event_audio import EventAudioSpec, EventAudioStore
from monitor.runtime.model_watch import ModelWatcher
from monitor.runtime.runner import StreamRunner
from monitor.sinks.jsonl import JsonlSink
from monitor.sources.base import AudioChunk, float_from_pcm16
from monitor.synth import inject_fault, machine_sound
from workers.model import load_model

SR = 16000
CHUNK = 1600  # 100 ms
STRONG, WEAK = 0.3, 0.06  # harmonic fault strengths: v1 catches STRONG, misses WEAK


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def v1_root(tmp_path_factory) -> Path:
    """A stage-1 ws-ae model (no labels) trained on 8 normal clips of a synthetic machine."""
    from monitor.training.audio import TrainOptions, train_audio

    root = tmp_path_factory.mktemp("loop")
    (root / "train").mkdir()
    for i in range(8):
        sf.write(root / "train" / f"normal_id_00_{i:08d}.wav",
                 machine_sound(seconds=4, f0=110, seed=i), SR, subtype="PCM_16")
    params = {"epochs": 60, "stage2_epochs": 60, "batch_size": 32, "patience": 10}
    train_audio(root / "train", root / "M", TrainOptions(scorer="ws-ae", device="cpu", params=params,
                                                        holdout=0.5))
    return root


def _faulty(strength: float, seed: int, seconds: float = 12.0) -> np.ndarray:
    x = machine_sound(seconds=seconds, f0=110, seed=seed)
    return inject_fault(x, kind="harmonic", start_s=4, end_s=9, strength=strength, seed=seed)


def _feed(runner: StreamRunner, stream: str, audio: np.ndarray, start: int = 0, end: bool = False,
          pcm16: np.ndarray | None = None):
    """``pcm16``: the same audio as int16 (as an s16le Kafka chunk carries it), passed along."""
    events = []
    for i in range(0, len(audio), CHUNK):
        last = end and i + CHUNK >= len(audio)
        pcm = None if pcm16 is None else pcm16[i:i + CHUNK]
        events += runner.feed(AudioChunk(stream, audio[i:i + CHUNK], SR, start + i, end_of_stream=last,
                                         pcm16=pcm))
    return events


def test_label_retrain_hot_reload_detects_the_missed_fault(v1_root, tmp_path, capsys):
    root = tmp_path / "M"
    shutil.copytree(v1_root / "M", root)
    v1 = load_model(root, device="cpu")
    store_dir, events_file = tmp_path / "event_audio", tmp_path / "events.jsonl"
    sink = JsonlSink(events_file)
    runner = StreamRunner(v1, sink, keep_windows=True,
                          event_audio=EventAudioStore(EventAudioSpec(store_dir, max_events=50)),
                          watcher=ModelWatcher(root, current_version=v1.version, every_s=0.0,
                                               device="cpu"))
    # phase 1: a strong fault; v1 raises an event and the store keeps its audio
    phase1 = _faulty(STRONG, seed=100)
    ev1 = _feed(runner, "line1/fan", phase1)
    sink.flush()
    closed = [e for e in ev1 if e["status"] == "closed"]
    assert len(closed) == 1 and closed[0]["model_version"] == v1.version
    eid = closed[0]["event_id"]
    assert (store_dir / f"{eid}.wav").is_file()

    # the operator labels it, and retrains (both through the CLI)
    assert main(["label", str(events_file), "--event-id", eid, "--as", "fault", "--model", str(root),
                 "--audio", str(store_dir)]) == 0
    labels = [json.loads(line) for line in (root / "labels.jsonl").read_text().splitlines()]
    assert labels[0]["event_id"] == eid and labels[0]["label"] == "fault"
    assert (root / labels[0]["audio"]).is_file()  # copied beside the model, safe from eviction
    assert main(["train", "--scorer", "ws-ae", "--from-model", str(root), "--labels",
                 str(root / "labels.jsonl"), "--device", "cpu"]) == 0
    v2_version = (root / LATEST).read_text().strip()
    assert v2_version != v1.version
    assert "stage 2 from operator labels (1 fault" in capsys.readouterr().out

    # phase 2, same running runner, same stream: a weak fault of the labelled kind
    phase2 = _faulty(WEAK, seed=200)
    ev2 = _feed(runner, "line1/fan", phase2, start=len(phase1))
    ev2 += runner.close()
    assert runner.reloads == 1 and runner.model.version == v2_version
    opened = [e for e in ev2 if e["status"] == "open"]
    assert opened and all(e["model_version"] == v2_version for e in opened)
    t0 = len(phase1) / SR
    assert any(e["start"] < t0 + 9 and e["end"] > t0 + 4 for e in opened)  # inside the fault

    # no window lost or scored twice across the reload
    idx = [w.index for w in runner.finished[0].windows]
    assert idx == list(range(idx[0], idx[0] + len(idx)))
    assert runner.finished[0].before_reload  # the summary under v1 is kept

    # the same weak fault under v1 raises nothing: it was missed before the labels
    old = StreamRunner(load_model(root / v1.version, device="cpu"))
    assert _feed(old, "replay", phase2, end=True) == []
    # and v2 stays quiet on normal sound
    quiet = StreamRunner(load_model(root, device="cpu"))
    assert _feed(quiet, "normal", machine_sound(seconds=12, f0=110, seed=300), end=True) == []


@pytest.mark.parametrize("as_pcm16", [False, True], ids=["float32", "int16-kept"])
def test_reload_rescores_only_unemitted_windows_and_loses_none(v1_root, tmp_path, as_pcm16):
    """A reload to a model with the same weights gives exactly the windows of no reload; also
    when the stream arrived as int16 PCM and the runner kept that instead of float32."""
    root = tmp_path / "M"
    shutil.copytree(v1_root / "M", root)
    v1_dir = root / (root / LATEST).read_text().strip()
    twin = root / "ws-ae-twin"
    shutil.copytree(v1_dir, twin)
    meta = json.loads((twin / "meta.json").read_text())
    meta["model_version"] = "ws-ae-twin"
    (twin / "meta.json").write_text(json.dumps(meta))
    audio = _faulty(STRONG, seed=5, seconds=9.0)
    pcm = None
    if as_pcm16:
        pcm = np.clip(np.round(audio * 32768.0), -32768, 32767).astype(np.int16)
        audio = float_from_pcm16(pcm)

    plain = StreamRunner(load_model(v1_dir, device="cpu"), keep_windows=True)
    _feed(plain, "s", audio, end=True)
    model = load_model(v1_dir, device="cpu")
    runner = StreamRunner(model, keep_windows=True,
                          watcher=ModelWatcher(root, current_version=model.version, every_s=0.0,
                                               device="cpu"))
    half = (len(audio) // 2 // CHUNK) * CHUNK + 700  # mid-window, mid-frame
    _feed(runner, "s", audio[:half], pcm16=None if pcm is None else pcm[:half])
    if as_pcm16:
        assert all(c.dtype == np.int16 for c in runner._raw["s"].chunks)
    set_latest(root, "ws-ae-twin")
    _feed(runner, "s", audio[half:], start=half, end=True, pcm16=None if pcm is None else pcm[half:])
    assert runner.reloads == 1
    a, b = plain.finished[0].windows, runner.finished[0].windows
    assert [w.index for w in a] == [w.index for w in b]
    np.testing.assert_allclose([w.score for w in b], [w.score for w in a], rtol=1e-5)


def test_a_broken_new_version_is_skipped_and_the_old_model_keeps_scoring(v1_root, tmp_path):
    root = tmp_path / "M"
    shutil.copytree(v1_root / "M", root)
    model = load_model(root, device="cpu")
    (root / "ws-ae-broken").mkdir()
    (root / "ws-ae-broken" / "meta.json").write_text("{not json")
    watcher = ModelWatcher(root, current_version=model.version, every_s=0.0, device="cpu")
    set_latest(root, "ws-ae-broken")
    assert watcher.poll() is None and watcher.current == model.version
    runner = StreamRunner(model, watcher=watcher)
    _feed(runner, "s", machine_sound(seconds=4, f0=110, seed=9), end=True)
    assert runner.reloads == 0 and runner.finished[0].summary.vectors > 0


def test_event_audio_store_keeps_exact_audio_and_evicts_the_oldest(tmp_path):
    store = EventAudioStore(EventAudioSpec(tmp_path / "a", max_events=2, retain_s=3.0, max_event_s=5.0))
    audio = (np.arange(8 * SR) % 1000 / 1000.0).astype(np.float32)
    for i in range(0, len(audio), CHUNK):
        store.on_chunk(AudioChunk("s", audio[i:i + CHUNK], SR, i))
        if i + CHUNK == 3 * SR:  # events over the last seconds, like the alerting stage's
            for k, (a, b) in enumerate([(SR, 2 * SR), (int(1.5 * SR), 3 * SR)]):
                store.on_event({"event_id": f"e{k}", "kind": "machine", "status": "closed",
                                "stream": "s", "start_sample": a, "end_sample": b})
    store.on_event({"event_id": "e2", "kind": "machine", "status": "closed", "stream": "s",
                    "start_sample": 7 * SR, "end_sample": 8 * SR})
    assert store.evicted == 1 and not (tmp_path / "a" / "e0.wav").exists()
    kept, sr = sf.read(tmp_path / "a" / "e1.wav", dtype="float32")
    assert sr == SR and np.array_equal(kept, audio[int(1.5 * SR):3 * SR])
    side = json.loads((tmp_path / "a" / "e2.json").read_text())
    assert side["complete"] and side["audio_start_sample"] == 7 * SR
    # the ring keeps retain_s seconds only: older audio is gone from memory
    assert store._rings["s"].start == 5 * SR


def test_event_audio_from_int16_chunks_of_any_size_is_exact(tmp_path):
    """Chunks kept as int16 and cut anywhere: an event's audio is exactly its samples as float32."""
    store = EventAudioStore(EventAudioSpec(tmp_path / "a", retain_s=2.0, max_event_s=4.0))
    pcm = (np.random.default_rng(4).uniform(-1, 1, 6 * SR) * 20000).astype(np.int16)
    audio = float_from_pcm16(pcm)
    i, sizes = 0, [1600, 733, 2048, 91]
    while i < len(pcm):
        n = sizes[i % len(sizes)]
        store.on_chunk(AudioChunk("s", audio[i:i + n], SR, i, pcm16=pcm[i:i + n]))
        i += n
    assert all(c.dtype == np.int16 for c in store._rings["s"].chunks)
    a, b = 4 * SR + 123, 6 * SR - 77  # inside the last 2 s, cut mid-chunk at both ends
    store.on_event({"event_id": "e", "kind": "machine", "status": "closed", "stream": "s",
                    "start_sample": a, "end_sample": b})
    kept, _ = sf.read(tmp_path / "a" / "e.wav", dtype="float32")
    assert np.array_equal(kept, audio[a:b])
    # at least the last 2 s are kept, and less than one chunk more
    ring = store._rings["s"]
    assert ring.end - 2 * SR - max(sizes) < ring.start <= ring.end - 2 * SR


def test_event_audio_store_bounds_count_and_bytes_across_restarts(tmp_path):
    """A store keeps its files' count and bytes in memory; one started on a folder an earlier
    run filled counts those files and evicts the oldest first."""
    audio = (np.arange(4 * SR) % 500 / 500.0).astype(np.float32)

    def fill(store, ids):
        for i in range(0, len(audio), CHUNK):
            store.on_chunk(AudioChunk("s", audio[i:i + CHUNK], SR, i))
        for k in ids:  # 1 s events: 64 kB of float32 audio each
            store.on_event({"event_id": k, "kind": "machine", "status": "closed", "stream": "s",
                            "start_sample": SR, "end_sample": 2 * SR})

    first = EventAudioStore(EventAudioSpec(tmp_path / "a", max_events=10, retain_s=4.0))
    fill(first, ["a0", "a1", "a2"])
    for age, k in enumerate(["a0", "a1", "a2"]):  # written long ago, in this order
        os.utime(tmp_path / "a" / f"{k}.wav", ns=((age + 1) * 10**9,) * 2)
    assert first.evicted == 0 and first._total > 3 * 64000
    # a restart with room for 4 events and ~2.5 events' bytes: the oldest two go
    again = EventAudioStore(EventAudioSpec(tmp_path / "a", max_events=4, max_bytes=int(2.5 * 66000),
                                           retain_s=4.0))
    fill(again, ["b0"])
    left = sorted(p.stem for p in (tmp_path / "a").glob("*.wav"))
    assert left == ["a2", "b0"] and again.evicted == 2
    assert again._total == sum(p.stat().st_size for p in (tmp_path / "a").iterdir())
