"""What every part of the benchmark scores: one trained model and one set of synthetic clips.

The clips are written as 16-bit WAV (what the DCASE way reads) and decoded once into int16
PCM (what the service receives from Kafka), so every path sees the very same samples.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from monitor.synth import machine_sound, write_factory
from monitor.training.audio import TrainOptions, train_audio

SAMPLE_RATE = 16000


@dataclass
class Workload:
    folder: Path
    paths: list[Path]
    pcm: list[np.ndarray]  # int16 samples per clip, as a Kafka payload carries them
    seconds: float  # audio seconds of all clips together


def make_clips(folder: Path, *, n: int, seconds: float, seed: int = 0) -> Workload:
    """``n`` synthetic machine clips of ``seconds`` each (varied fundamentals), as WAV files."""
    import soundfile as sf  # noqa: PLC0415

    folder.mkdir(parents=True, exist_ok=True)
    paths, pcm = [], []
    for i in range(n):
        x = machine_sound(seconds=seconds, sample_rate=SAMPLE_RATE, f0=80.0 + 23.0 * (i % 11), seed=seed + i)
        p = folder / f"clip_{i:04d}.wav"
        sf.write(p, x, SAMPLE_RATE, subtype="PCM_16")
        data, _ = sf.read(p, dtype="int16")
        paths.append(p)
        pcm.append(np.ascontiguousarray(data))
    return Workload(folder, paths, pcm, n * seconds)


def train_bench_model(folder: Path, *, scorer: str = "ae", epochs: int, seed: int = 0) -> Path:
    """A real model of the production architecture, trained briefly on a synthetic pump.

    Speed does not depend on how long it trained; the architecture is the scorer's default.
    """
    from models.registry import scorer_class  # noqa: PLC0415

    # clips of 4 alerting windows at least (stats-maha's window is 4 s): enough held-out windows
    seconds = max(4.0, 4 * scorer_class(scorer).audio_defaults["window_s"])
    data = write_factory(folder / "data", machines={"pump": 110.0}, normal_clips=12, test_normal=0,
                         test_faulty=0, seconds=seconds, seed=seed)["pump"]
    n_epochs = epochs if "epochs" in scorer_class(scorer).defaults else None  # ARIMA has no epochs
    out, _ = train_audio(data["train"], folder / "models" / scorer,
                         TrainOptions(scorer=scorer, seed=seed, epochs=n_epochs, device="cpu", holdout=0.25))
    return out


def machine_info() -> dict:
    """The CPU, core count and library versions the figures were measured with."""
    import platform  # noqa: PLC0415

    import torch  # noqa: PLC0415

    cpu = platform.processor() or "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    info = {"cpu": cpu, "cores": os.cpu_count(), "python": platform.python_version(),
            "torch": torch.__version__, "numpy": np.__version__,
            "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None}
    return info


def load_average() -> list[float] | None:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return None
