"""Synthetic machine sounds and injected faults, for the demo, tests and benchmarks.

A machine is a rotating part: a fundamental with decaying harmonics, a slow amplitude
modulation at the shaft rate, a little frequency jitter and broadband noise. Faults are the
classic ones a listener notices: a click train (a chipped bearing), an extra harmonic (a loose
part resonating), tone bursts (a whistle), a level step (a change of load).
"""
from __future__ import annotations

import numpy as np

FAULTS = ("clicks", "harmonic", "tone-bursts", "level-step")


def machine_sound(*, seconds: float, sample_rate: int = 16000, f0: float = 120.0,
                  harmonics: int = 8, noise: float = 0.03, seed: int = 0) -> np.ndarray:
    """``seconds`` of one machine's normal sound, float32 in [-1, 1]."""
    rng = np.random.default_rng(seed)
    n = round(seconds * sample_rate)
    t = np.arange(n) / sample_rate
    f = f0 * (1 + 0.005 * rng.standard_normal()) * (1 + 0.002 * np.sin(2 * np.pi * 0.3 * t))
    phase = 2 * np.pi * np.cumsum(f) / sample_rate
    x = np.zeros(n)
    for h in range(1, harmonics + 1):
        x += (0.6 / h) * np.sin(h * phase + rng.uniform(0, 2 * np.pi))
    shaft = f0 / 8
    x *= 1 + 0.2 * np.sin(2 * np.pi * shaft * t + rng.uniform(0, 2 * np.pi))
    white = rng.standard_normal(n)
    brown = np.cumsum(white)
    brown -= np.convolve(brown, np.ones(64) / 64, mode="same")  # keep it from drifting
    x += noise * (white + 0.1 * brown / (np.std(brown) + 1e-9))
    return (0.08 * x / (np.sqrt(np.mean(np.square(x))) + 1e-12)).astype(np.float32)


def inject_fault(audio: np.ndarray, *, kind: str, start_s: float, end_s: float,
                 sample_rate: int = 16000, strength: float = 1.0, seed: int = 0) -> np.ndarray:
    """A copy of ``audio`` with a fault between ``start_s`` and ``end_s`` seconds."""
    if kind not in FAULTS:
        raise ValueError(f"unknown fault {kind!r}; known: {', '.join(FAULTS)}")
    rng = np.random.default_rng(seed)
    out = np.array(audio, dtype=np.float64)
    a, b = round(start_s * sample_rate), min(len(out), round(end_s * sample_rate))
    if b <= a:
        return out.astype(np.float32)
    seg = np.arange(b - a) / sample_rate
    level = float(np.sqrt(np.mean(np.square(out)))) or 0.05
    if kind == "clicks":
        period = round(sample_rate / 23.0)
        click = np.exp(-np.arange(160) / 25.0) * rng.standard_normal(160)
        for p in range(a, b - len(click), period):
            out[p:p + len(click)] += 6 * strength * level * click
    elif kind == "harmonic":
        out[a:b] += 1.5 * strength * level * np.sin(2 * np.pi * 2730.0 * seg)
    elif kind == "tone-bursts":
        gate = (np.floor(seg / 0.1) % 2 == 0).astype(float)
        out[a:b] += 2.0 * strength * level * gate * np.sin(2 * np.pi * 3150.0 * seg)
    elif kind == "level-step":
        out[a:b] *= 1 + 2.0 * strength
    return np.clip(out, -1.0, 1.0).astype(np.float32)


def write_factory(folder, *, machines: dict[str, float], normal_clips: int = 12,
                  test_normal: int = 4, test_faulty: int = 4, seconds: float = 4.0,
                  sample_rate: int = 16000, seed: int = 0) -> dict[str, dict[str, str]]:
    """Write ``<machine>/{train,test}/`` folders of DCASE-2020-style clips for each machine.

    ``machines`` maps a machine name to its fundamental frequency in Hz.
    """
    from pathlib import Path  # noqa: PLC0415

    import soundfile as sf  # noqa: PLC0415

    out = {}
    for m_i, (name, f0) in enumerate(machines.items()):
        root = Path(folder) / name
        (root / "train").mkdir(parents=True, exist_ok=True)
        (root / "test").mkdir(parents=True, exist_ok=True)
        base = seed * 1000 + m_i * 100
        for i in range(normal_clips):
            x = machine_sound(seconds=seconds, sample_rate=sample_rate, f0=f0, seed=base + i)
            sf.write(root / "train" / f"normal_id_00_{i:08d}.wav", x, sample_rate, subtype="PCM_16")
        for i in range(test_normal):
            x = machine_sound(seconds=seconds, sample_rate=sample_rate, f0=f0, seed=base + 50 + i)
            sf.write(root / "test" / f"normal_id_00_{i:08d}.wav", x, sample_rate, subtype="PCM_16")
        for i in range(test_faulty):
            x = machine_sound(seconds=seconds, sample_rate=sample_rate, f0=f0, seed=base + 70 + i)
            x = inject_fault(x, kind=FAULTS[i % 3], start_s=0.5, end_s=seconds - 0.5,
                             sample_rate=sample_rate, seed=base + i)
            sf.write(root / "test" / f"anomaly_id_00_{i:08d}.wav", x, sample_rate, subtype="PCM_16")
        out[name] = {"train": str(root / "train"), "test": str(root / "test")}
    return out
