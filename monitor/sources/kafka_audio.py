"""Audio chunks from a Kafka topic (DESIGN §4.3): raw PCM values, metadata in headers.

Key = stream id; value = little-endian PCM (``s16le`` or ``f32le``), interleaved when
``channels`` > 1 (downmixed to mono by the mean); headers ``sample_rate``, ``channels``,
``format``, ``ts`` (capture time of the first sample, ns since epoch), ``seq`` (per-stream chunk
counter), optional ``machine`` and ``eos`` (``1`` on a stream's last chunk). Decoding is numpy on
the raw bytes: no JSON on the audio path.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from monitor.errors import MonitorError
from monitor.sources.base import float_from_pcm16

FORMATS = {"s16le": np.dtype("<i2"), "f32le": np.dtype("<f4")}
REQUIRED = ("sample_rate", "channels", "format", "ts", "seq")


class BadMessage(MonitorError):
    """A message that cannot be used; ``code`` goes into the dead letter's ``error`` header."""

    def __init__(self, code: str, detail: str) -> None:
        super().__init__(f"{code}: {detail}")
        self.code, self.detail = code, detail


@dataclass
class KafkaAudioChunk:
    stream: str
    samples: np.ndarray  # mono float32
    sample_rate: int
    ts_ns: int
    seq: int
    machine: str | None = None
    eos: bool = False
    pcm16: np.ndarray | None = None  # the s16le mono payload itself (see AudioChunk.pcm16)

    def grid_sample(self) -> int:
        """This chunk's first sample on the stream's absolute grid (sample 0 = the epoch)."""
        return (self.ts_ns * self.sample_rate + 500_000_000) // 1_000_000_000


def headers_dict(headers) -> dict[str, bytes]:
    return {k: v for k, v in (headers or ())}


def _int_header(h: dict[str, bytes], name: str, *, lo: int, hi: int) -> int:
    raw = h.get(name)
    try:
        value = int(raw.decode("ascii"))
    except (AttributeError, UnicodeDecodeError, ValueError):
        raise BadMessage("bad-header", f"header {name}={raw!r} is not an integer") from None
    if not lo <= value <= hi:
        raise BadMessage("bad-header", f"header {name}={value} is out of range [{lo}, {hi}]")
    return value


def stream_id(key: bytes | None) -> str:
    """The message key as a stream id (both topics key messages by stream)."""
    if not key:
        raise BadMessage("no-key", "the message has no key (the stream id)")
    try:
        return key.decode("utf-8")
    except UnicodeDecodeError:
        raise BadMessage("bad-key", f"the key {key[:40]!r} is not UTF-8") from None


def decode_audio(key: bytes | None, value: bytes | None, headers, *,
                 max_seconds: float | None = None) -> KafkaAudioChunk:
    """One Kafka message -> a mono float32 chunk; raises ``BadMessage`` naming what is wrong.

    ``max_seconds``: a chunk carrying more audio than this is refused (``oversized-chunk``)
    before its samples are converted: no live capture sends minutes in one message.
    """
    stream = stream_id(key)
    h = headers_dict(headers)
    missing = [n for n in REQUIRED if n not in h]
    if missing:
        raise BadMessage("missing-header", f"missing header(s) {', '.join(missing)}")
    fmt = h["format"].decode("ascii", "replace") if isinstance(h["format"], bytes) else str(h["format"])
    dtype = FORMATS.get(fmt)
    if dtype is None:
        raise BadMessage("unknown-format", f"format {fmt!r} is not one of {', '.join(FORMATS)}")
    sr = _int_header(h, "sample_rate", lo=1000, hi=384000)
    channels = _int_header(h, "channels", lo=1, hi=64)
    ts = _int_header(h, "ts", lo=0, hi=2**63 - 1)
    seq = _int_header(h, "seq", lo=0, hi=2**63 - 1)
    if not value:
        raise BadMessage("empty-value", "the message carries no samples")
    frame = dtype.itemsize * channels
    if len(value) % frame:
        raise BadMessage("odd-byte-count", f"{len(value)} bytes is not a whole number of "
                         f"{channels}-channel {fmt} frames ({frame} bytes each)")
    if max_seconds is not None and len(value) // frame > max_seconds * sr:
        raise BadMessage("oversized-chunk", f"{len(value) // frame / sr:.2f} s of audio in one message "
                         f"({len(value)} bytes) is over service.max_chunk_s = {max_seconds:g} s")
    raw = np.frombuffer(value, dtype=dtype)
    if dtype.kind == "i":
        samples = float_from_pcm16(raw)
    else:
        samples = raw.astype(np.float32)
        if not np.isfinite(samples).all():
            raise BadMessage("non-finite", "the samples contain NaN or infinity")
    if channels > 1:
        samples = samples.reshape(-1, channels).mean(axis=1, dtype=np.float32)
    machine = h.get("machine")
    eos = h.get("eos", b"0") in (b"1", b"true")
    return KafkaAudioChunk(stream, samples, sr, ts, seq,
                           machine.decode("utf-8", "replace") if machine else None, eos,
                           raw if dtype.kind == "i" and channels == 1 else None)


def encode_audio(samples: np.ndarray, *, fmt: str = "s16le") -> bytes:
    """Mono float samples in [-1, 1] -> PCM bytes (the producer's side of ``decode_audio``)."""
    x = np.asarray(samples, dtype=np.float32)
    if fmt == "s16le":
        return np.clip(np.round(x * 32768.0), -32768, 32767).astype("<i2").tobytes()
    if fmt == "f32le":
        return x.astype("<f4").tobytes()
    raise ValueError(f"unknown format {fmt!r}")


def audio_headers(*, sample_rate: int, ts_ns: int, seq: int, fmt: str = "s16le", channels: int = 1,
                  machine: str | None = None, eos: bool = False) -> list[tuple[str, bytes]]:
    h = [("sample_rate", str(sample_rate).encode()), ("channels", str(channels).encode()),
         ("format", fmt.encode()), ("ts", str(ts_ns).encode()), ("seq", str(seq).encode())]
    if machine:
        h.append(("machine", machine.encode()))
    if eos:
        h.append(("eos", b"1"))
    return h
