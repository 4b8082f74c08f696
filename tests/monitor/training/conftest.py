"""Fixtures shared by the weakly-supervised training tests."""
from __future__ import annotations

from pathlib import Path

import pytest
import soundfile as sf

#: ws-ae settings that train in seconds.
FAST_WS_AE = {"epochs": 15, "stage2_epochs": 10, "batch_size": 32, "patience": 5}


def write_clips(folder: Path, clips) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name, a in clips:
        sf.write(folder / name, a, 16000, subtype="PCM_16")
    return folder


@pytest.fixture(scope="module")
def pump_data(tmp_path_factory):
    """8 normal pump clips (train/); faint (stage 1 ranks them ~0.8) and loud harmonic faults,
    3 clips each (faint/, loud/)."""
    from monitor.synth import inject_fault, machine_sound

    root = tmp_path_factory.mktemp("pump")
    write_clips(root / "train", [(f"normal_id_00_{i:08d}.wav", machine_sound(seconds=4, f0=110, seed=i))
                                 for i in range(8)])
    for kind, strength in (("faint", 0.03), ("loud", 4.0)):
        write_clips(root / kind, [(f"anomaly_id_00_{i:08d}.wav",
                                   inject_fault(machine_sound(seconds=4, f0=110, seed=40 + i), kind="harmonic",
                                                start_s=0, end_s=4, strength=strength, seed=i))
                                  for i in range(3)])
    return root
