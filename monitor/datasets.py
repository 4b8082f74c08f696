"""Recorded audio clips: names -> labels and domains, files -> mono float32 at the model's rate.

Labels come from the ``normal`` / ``anomaly`` token of a file name (never from a ``train`` /
``test`` folder name), domains from ``source`` / ``target`` (DCASE 2022+). Bad files are
skipped with a warning naming them and counted, so a run says what it left out: unreadable,
truncated (a WAV whose header promises more audio than the file holds), a sample rate below
the model's (upsampling cannot restore the band the model learnt), several channels when no
``channel`` choice was stated, too short for one window. A rate above the model's is resampled
down, said once per rate with both values.
"""
from __future__ import annotations

import logging
import re
import struct
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
        if folder.suffix.lower() not in AUDIO_SUFFIXES:
            hint = (" (a sensor CSV needs a sensor model, trained with --time-column)"
                    if folder.suffix.lower() == ".csv" else "")
            raise DataError(f"{folder}: not an audio file: looked for "
                            f"{'/'.join(sorted(AUDIO_SUFFIXES))}{hint}")
        return [parse_clip_name(folder)]
    if not folder.is_dir():
        raise DataError(f"{folder}: no such folder")
    clips = [parse_clip_name(p) for p in sorted(folder.iterdir())
             if p.is_file() and p.suffix.lower() in AUDIO_SUFFIXES]
    if not clips:
        csv = any(p.suffix.lower() == ".csv" for p in folder.iterdir())
        raise DataError(f"{folder}: no audio clips (.wav/.flac/.ogg)"
                        + (" but .csv files: sensor CSVs need a sensor model (--time-column)" if csv
                           else f"; expected names like {EXPECTED_NAMES}"))
    return clips


def parse_channel(text: str | None) -> int | str | None:
    """``--channel``: a 0-based channel index, ``mean`` (mix all channels), or None (mono only)."""
    if text is None or text == "mean":
        return text
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 0:
        raise DataError(f"--channel {text!r}: expected a channel index (0, 1, ...) or 'mean'")
    return value


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
              report: ReadReport | None = None, channel: int | str | None = None) -> np.ndarray | None:
    """Mono float32 audio in [-1, 1] at ``sample_rate``, or None (skipped, with a warning).

    ``channel``: which channel of a multi-channel file to use (an index or ``mean``); None
    takes mono files only and skips the others, naming their channel count.
    """
    import soundfile as sf  # noqa: PLC0415

    report = report if report is not None else ReadReport()
    try:
        audio, sr = sf.read(str(path), dtype="float32", always_2d=True)
    except Exception as exc:  # libsndfile raises a few types for corrupt or foreign files
        report.skip(path, "unreadable", f"not readable audio ({str(exc).strip()[:120]})")
        return None
    short = wav_shortfall(path, frames=len(audio))
    if short:
        report.skip(path, "truncated", short)
        return None
    n_ch = audio.shape[1]
    if channel is None and n_ch > 1:
        report.skip(path, "channels", f"{n_ch} channels, the model takes 1 (mono): choose one with "
                                      "--channel N (0-based) or mix them with --channel mean")
        return None
    if isinstance(channel, int) and channel >= n_ch:
        report.skip(path, "channels", f"{n_ch} channel(s), no channel {channel} (--channel is 0-based)")
        return None
    if n_ch > 1:
        report.convert_once(f"channel-{channel}", path, f"{n_ch} channels, the model takes 1: "
                            + ("mixing them (mean)" if channel == "mean" else f"using channel {channel}"))
    audio = audio.mean(axis=1, dtype=np.float32) if channel == "mean" else \
        np.ascontiguousarray(audio[:, channel or 0])
    if sr < sample_rate:
        report.skip(path, "sample-rate", f"sample rate {sr} Hz, the model's is {sample_rate} Hz: "
                                         f"upsampling cannot restore the band above {sr // 2} Hz "
                                         f"the model learnt; record at {sample_rate} Hz or more")
        return None
    if sr != sample_rate:
        report.convert_once(f"resampled-{sr}", path, f"sample rate {sr} Hz, the model's is "
                            f"{sample_rate} Hz: resampled down to {sample_rate} Hz")
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


def wav_shortfall(path: Path, *, frames: int) -> str | None:
    """For a WAV whose ``data`` chunk declares more bytes than the file holds (a copy or a
    recording cut short): what is missing, else None. libsndfile reads such a file without
    complaint, as if it were a shorter clip. A streaming header (size 0 or 0xFFFFFFFF) declares
    nothing and passes."""
    if Path(path).suffix.lower() != ".wav":
        return None
    try:
        with open(path, "rb") as f:
            head = f.read(12)
            if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"WAVE":
                return None
            block = None
            while True:
                hdr = f.read(8)
                if len(hdr) < 8:
                    return None
                cid, size = hdr[:4], struct.unpack("<I", hdr[4:])[0]
                if cid == b"fmt ":
                    fmt = f.read(size + (size & 1))
                    block = struct.unpack("<H", fmt[12:14])[0] if len(fmt) >= 14 else None
                    continue
                if cid == b"data":
                    if size in (0, 0xFFFFFFFF) or not block:
                        return None
                    present = Path(path).stat().st_size - f.tell()
                    if present >= size:
                        return None
                    declared = size // block
                    return (f"truncated: the header declares {declared} frames, the file holds "
                            f"{frames} ({100 * frames / declared:.0f} %)")
                f.seek(size + (size & 1), 1)
    except OSError:
        return None


def require_usable(data: str | Path, looked_at: int, usable: int, report: ReadReport,
                   what: str = "clips") -> None:
    """Stop with what was looked at and why each file was left out when nothing is usable."""
    if usable:
        return
    reasons = ", ".join(f"{k} {n}" for k, n in sorted(report.skipped.items()))
    reasons = f"by reason: {reasons}" if reasons else "none readable"
    raise DataError(f"{data}: no usable {what}: {looked_at} audio file(s) looked at, all skipped "
                    f"({reasons}; the warnings above name each file)")


def resample(audio: np.ndarray, sr_in: int, sr_out: int) -> np.ndarray:
    from math import gcd  # noqa: PLC0415

    from scipy.signal import resample_poly  # noqa: PLC0415

    g = gcd(sr_in, sr_out)
    return resample_poly(audio, sr_out // g, sr_in // g).astype(np.float32)
