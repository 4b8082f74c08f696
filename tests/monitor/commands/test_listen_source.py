"""A new live source written as the README's developer section says (one class, one ``LIVE``
line) runs through ``monitor listen`` and the per-stream runtime with nothing else changed, and
decides exactly as ``monitor replay`` of the same audio does."""
from __future__ import annotations

import json
import time
from types import SimpleNamespace

import numpy as np
import soundfile as sf

from monitor.cli import main
from monitor.sources import LIVE
from monitor.sources.base import AudioChunk, CaptureStats
from monitor.synth import inject_fault, machine_sound

SR = 16000
STREAM = "anomaly_id_07_00000000"


def _audio() -> np.ndarray:
    """Six seconds of the synthetic pump with a click fault at 2-4 s, on the 16-bit grid."""
    x = inject_fault(machine_sound(seconds=6.0, f0=110.0, seed=31), kind="clicks", start_s=2.0, end_s=4.0)
    return np.round(np.clip(x, -1, 1 - 1 / 32768) * 32768).astype(np.int16)


class SynthSource:
    """The whole source: the settings every live source takes, one listen option, the lifecycle."""

    listen_options = ("device",)

    def __init__(self, *, sample_rate: int, stream: str, machine: str | None, block_ms: float,
                 max_samples: int | None, device: str | None) -> None:
        self.rate, self.stream, self.machine, self.dtype = sample_rate, stream, machine, "int16"
        self.block = round(sample_rate * block_ms / 1000)
        self.device = SimpleNamespace(name=f"synth {device}", index=None)
        self.stats = CaptureStats()
        self.stopped = False

    def open(self) -> "SynthSource":
        return self

    def stop(self) -> None:
        self.stopped = True

    def close(self) -> None:
        pass

    def __iter__(self):
        pcm, t0 = _audio(), time.time()
        for a in range(0, len(pcm), self.block):
            if self.stopped:
                return
            part = pcm[a:a + self.block]
            self.stats.blocks += 1
            self.stats.samples += len(part)
            yield AudioChunk(self.stream, part.astype(np.float32) / 32768, self.rate, a,
                             end_of_stream=a + self.block >= len(pcm), machine=self.machine,
                             time_origin_s=t0, capture_time_s=t0 + a / self.rate, pcm16=part)


def _key(e: dict) -> tuple:
    return (e["event_id"], e["status"], e["kind"], e["start_sample"], e["end_sample"])


def test_a_new_live_source_is_one_class_and_one_registry_line(trained_model, tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(LIVE, "synth", f"{__name__}:SynthSource")
    listened, replayed = tmp_path / "listen.jsonl", tmp_path / "replay.jsonl"
    rc = main(["listen", "--model", str(trained_model), "--input", "synth", "--device", "rig-7",
               "--stream", STREAM, "--events", str(listened), "--compute-device", "cpu"])
    assert rc == 0
    sf.write(tmp_path / f"{STREAM}.wav", _audio(), SR, subtype="PCM_16")
    assert main(["replay", "--model", str(trained_model), "--data", str(tmp_path / f"{STREAM}.wav"),
                 "--events", str(replayed), "--input-health", "--device", "cpu"]) == 0
    got = [json.loads(x) for x in listened.read_text().splitlines()]
    want = [json.loads(x) for x in replayed.read_text().splitlines()]
    assert any(e["kind"] == "machine" and e["status"] == "open" for e in got)
    assert sorted(map(_key, got)) == sorted(map(_key, want))
