"""Publishing to Kafka in the service's wire format (DESIGN §4.3): audio chunk streams, sensor rows.

``publish_audio`` sends ``OutChunk``s from any iterator (files, a microphone, a benchmark's
load), pacing them at real time when asked. Timestamps come from the sample clock
(``ts = (base + position) / rate``), so a consumer that places chunks by ``ts`` lands on exactly
the samples a continuous reader does.
"""
from __future__ import annotations

import csv
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from monitor.datasets import read_clip
from monitor.errors import DataError
from monitor.sources.kafka_audio import audio_headers, encode_audio


@dataclass
class OutChunk:
    """One chunk to publish: ``position`` = its first sample's index since the stream began."""

    stream: str
    samples: np.ndarray
    sample_rate: int
    position: int
    machine: str | None = None
    eos: bool = False


@dataclass
class PublishStats:
    messages: int = 0
    bytes: int = 0
    seconds: float = 0.0
    streams: int = 0


def ts_for(base_sample: int, position: int, sample_rate: int) -> int:
    """ns timestamp of a sample, rounded so ``round(ts * rate / 1e9)`` gives it back exactly."""
    return ((base_sample + position) * 1_000_000_000 + sample_rate // 2) // sample_rate


def publish_audio(producer, topic: str, chunks: Iterable[OutChunk], *, fmt: str = "s16le",
                  start_ts_ns: int | None = None, realtime: bool = False, flush: bool = True,
                  on_send=None) -> PublishStats:
    """Send chunks (each stream's in order) to ``topic``; ``seq`` counts chunks per stream.

    ``start_ts_ns``: capture time of every stream's first sample (default: now). With
    ``realtime`` a chunk is sent when its last sample would have been captured.
    """
    t0 = time.monotonic()
    base_ns = time.time_ns() if start_ts_ns is None else start_ts_ns
    seqs: dict[str, int] = {}
    stats = PublishStats()
    for c in chunks:
        base = (base_ns * c.sample_rate + 500_000_000) // 1_000_000_000
        seq = seqs.get(c.stream, 0)
        seqs[c.stream] = seq + 1
        if realtime:
            delay = t0 + (c.position + len(c.samples)) / c.sample_rate - time.monotonic()
            if delay > 0:
                time.sleep(delay)
        value = encode_audio(c.samples, fmt=fmt)
        producer.send(topic, key=c.stream.encode(), value=value,
                      headers=audio_headers(sample_rate=c.sample_rate, fmt=fmt, seq=seq, machine=c.machine,
                                            ts_ns=ts_for(base, c.position, c.sample_rate), eos=c.eos))
        stats.messages += 1
        stats.bytes += len(value)
        if on_send is not None:
            on_send(c)
    if flush:
        producer.flush()
    stats.seconds = time.monotonic() - t0
    stats.streams = len(seqs)
    return stats


def file_chunks(files: list[Path], *, sample_rate: int = 16000, chunk_ms: float = 100.0,
                streams: int | None = None, prefix: str = "", loop: bool = False,
                eos: bool = True, names: list[str] | None = None) -> Iterator[OutChunk]:
    """Files as interleaved streams: chunk i of every stream before chunk i+1 of any.

    One stream per file (named by the file's stem), or ``streams`` streams fanned out over the
    files (``<prefix>stream-0007`` plays file 7 mod len(files)). ``loop`` repeats each file
    forever as one continuous stream; otherwise the last chunk carries ``eos``. ``names`` gives
    the stream ids of the files explicitly.
    """
    if not files:
        raise DataError("no audio files to publish")
    audio = {}
    for f in files:
        a = read_clip(f, sample_rate=sample_rate)
        if a is None:
            raise DataError(f"{f}: cannot be read as audio")
        audio[f] = a
    if names is not None:
        plan = [(f"{prefix}{n}", f) for n, f in zip(names, files, strict=True)]
    elif streams is None:
        plan = [(f"{prefix}{f.stem}", f) for f in files]
    else:
        plan = [(f"{prefix}stream-{i:04d}", files[i % len(files)]) for i in range(streams)]
    step = max(1, round(sample_rate * chunk_ms / 1000))
    pos = {name: 0 for name, _ in plan}
    live = list(plan)
    while live:
        still = []
        for name, f in live:
            a = audio[f]
            p = pos[name]
            i = p % len(a) if loop else p
            part = a[i:i + step]
            if loop and len(part) < step:
                part = np.concatenate([part, a[:step - len(part)]])
            last = not loop and i + step >= len(a)
            machine = f.parent.parent.name or None
            yield OutChunk(name, part, sample_rate, p, machine, eos and last)
            pos[name] = p + len(part)
            if not last:
                still.append((name, f))
        live = still


def producer_for(kafka):
    """A producer tuned for bulk chunks, once the brokers answer (else a one-line cause);
    ``kafka`` = a ``KafkaConfig`` (its security settings) or a plaintext bootstrap string."""
    from monitor.config import KafkaConfig  # noqa: PLC0415
    from monitor.kafka.cli_options import connected_producer  # noqa: PLC0415

    k = KafkaConfig(bootstrap=kafka) if isinstance(kafka, str) else kafka
    return connected_producer(k, linger_ms=20, batch_size=1 << 20, max_request_size=8 << 20)


def mic_chunks(mic) -> Iterator[OutChunk]:
    """A ``MicrophoneSource``'s chunks to publish; ``position`` is the capture sample index, so
    a dropped capture block shows as a jump of ``ts`` (``seq`` stays contiguous)."""
    for c in mic:
        yield OutChunk(c.stream, c.samples, c.sample_rate, c.start_sample, c.machine)


def chain(first: OutChunk, rest: Iterator[OutChunk]) -> Iterator[OutChunk]:
    yield first
    yield from rest


def sensor_rows(path: Path, *, time_column: str | None = None, columns: list[str] | None = None):
    """(ts_ns, {column: value}) per CSV row; ``,`` or ``;`` separated; non-numeric cells skipped."""
    from monitor.sources.kafka_sensors import parse_ts_ns  # noqa: PLC0415

    text = path.read_text(encoding="utf-8")
    dialect = csv.Sniffer().sniff(text.splitlines()[0], delimiters=",;\t")
    reader = csv.DictReader(text.splitlines(), dialect=dialect)
    if time_column and time_column not in (reader.fieldnames or []):
        raise DataError(f"{path}: no column {time_column!r} (columns: {', '.join(reader.fieldnames or [])})")
    for i, row in enumerate(reader):
        ts_raw = row.get(time_column) if time_column else None
        if ts_raw is None:
            ts = i * 1_000_000_000
        else:
            ts = parse_ts_ns(int(ts_raw) if ts_raw.isdigit() else ts_raw.replace(" ", "T"), f"{path} row {i + 2}")
        values = {}
        for k, v in row.items():
            if k == time_column or (columns and k not in columns):
                continue
            try:
                values[k] = float(v)
            except (TypeError, ValueError):
                continue
        yield ts, values
