"""Recorded audio clips: names -> labels and domains, files -> mono float32 at the model's rate.

Labels come from the ``normal`` / ``anomaly`` token of a file name (never from a ``train`` /
``test`` folder name), domains from ``source`` / ``target`` (DCASE 2022+). Bad files are
skipped with a warning naming them and counted, so a run says what it left out.
"""
from __future__ import annotations

import logging
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from monitor.errors import DataError

log = logging.getLogger(__name__)

AUDIO_SUFFIXES = {".wav", ".flac", ".ogg"}
_LABEL = re.compile(r"(?:^|_)(normal|anomaly)(?=_|$)")
_DOMAIN = re.compile(r"(?:^|_)(source|target)(?=_|$)")
_SECTION = re.compile(r"(?:^|_)(?:section|id)_(\d+)(?=_|$)")
EXPECTED_NAMES = ("DCASE 2020 'normal_id_00_00000000.wav' or DCASE 2022+ "
                  "'section_00_source_train_normal_0000_....wav'")


@dataclass(frozen=True)
class Clip:
    path: Path
    label: str | None
    domain: str | None
    section: str | None

    @property
    def is_anomaly(self) -> bool:
        return self.label == "anomaly"


def parse_clip_name(path: Path) -> Clip:
    stem = path.stem
    label = _LABEL.search(stem)
    domain = _DOMAIN.search(stem)
    section = _SECTION.search(stem)
    return Clip(path, label and label.group(1), domain and domain.group(1), section and section.group(1))


def list_clips(folder: str | Path) -> list[Clip]:
    """All audio clips in ``folder`` (a file is a one-clip folder), sorted by name."""
    folder = Path(folder)
    if folder.is_file():
        return [parse_clip_name(folder)]
    if not folder.is_dir():
        raise DataError(f"{folder}: no such folder")
    clips = [parse_clip_name(p) for p in sorted(folder.iterdir())
             if p.is_file() and p.suffix.lower() in AUDIO_SUFFIXES]
    if not clips:
        raise DataError(f"{folder}: no audio clips (.wav/.flac/.ogg); expected names like {EXPECTED_NAMES}")
    return clips


@dataclass
class ReadReport:
    """Counts of what was read, converted or skipped, for a run's summary."""

    read: int = 0
    skipped: Counter = field(default_factory=Counter)
    converted: Counter = field(default_factory=Counter)
    _warned: set = field(default_factory=set)

    def skip(self, path: Path, reason: str, detail: str) -> None:
        self.skipped[reason] += 1
        log.warning("skipped %s: %s", path, detail, extra={"file": str(path), "reason": reason})

    def convert_once(self, kind: str, path: Path, detail: str) -> None:
        self.converted[kind] += 1
        if kind not in self._warned:
            self._warned.add(kind)
            log.warning("%s: %s (said once per run)", path, detail, extra={"file": str(path)})

    def to_dict(self) -> dict:
        return {"read": self.read, "skipped": dict(self.skipped), "converted": dict(self.converted)}


def read_clip(path: Path, *, sample_rate: int, min_samples: int = 0,
              report: ReadReport | None = None) -> np.ndarray | None:
    """Mono float32 audio in [-1, 1] at ``sample_rate``, or None (skipped, with a warning)."""
    import soundfile as sf  # noqa: PLC0415

    report = report if report is not None else ReadReport()
    try:
        audio, sr = sf.read(str(path), dtype="float32", always_2d=True)
    except Exception as exc:  # libsndfile raises a few types for corrupt or foreign files
        report.skip(path, "unreadable", f"not readable audio ({str(exc).strip()[:120]})")
        return None
    if audio.shape[1] > 1:
        report.convert_once("channel0", path, f"{audio.shape[1]} channels; using channel 0")
    audio = np.ascontiguousarray(audio[:, 0])
    if sr != sample_rate:
        report.convert_once("resampled", path, f"sample rate {sr} Hz; resampling to {sample_rate} Hz")
        audio = resample(audio, sr, sample_rate)
    if not np.isfinite(audio).all():
        report.skip(path, "non-finite", "contains NaN or inf samples")
        return None
    if len(audio) < max(min_samples, 1):
        report.skip(path, "too-short", f"{len(audio)} samples, shorter than one window "
                                       f"({min_samples} samples)")
        return None
    report.read += 1
    return audio


def resample(audio: np.ndarray, sr_in: int, sr_out: int) -> np.ndarray:
    from math import gcd  # noqa: PLC0415

    from scipy.signal import resample_poly  # noqa: PLC0415

    g = gcd(sr_in, sr_out)
    return resample_poly(audio, sr_out // g, sr_in // g).astype(np.float32)
