"""``monitor produce``: publish audio files (or any chunk iterator) and sensor CSVs to Kafka.

``publish_audio`` is the reusable part: it sends ``OutChunk``s from any iterator (files here;
a microphone or a benchmark elsewhere) with the wire format of DESIGN §4.3, pacing them at real
time when asked. Timestamps come from the sample clock (``ts = (base + position) / rate``), so a
consumer that places chunks by ``ts`` lands on exactly the samples a continuous reader does.
"""
from __future__ import annotations

import argparse
import csv
import json
import logging
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..datasets import list_clips, read_clip
from ..errors import DataError
from ..sources.kafka_audio import audio_headers, encode_audio

HELP = "publish audio files or a sensor CSV to Kafka topics (the service's wire format)"
log = logging.getLogger("monitor")


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


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("produce", help=HELP, description=HELP)
    kinds = p.add_subparsers(dest="kind", metavar="KIND", required=True)
    a = kinds.add_parser("audio", help="audio files as PCM chunk streams")
    a.add_argument("--bootstrap", required=True, metavar="HOST:PORT")
    a.add_argument("--topic", default="machine-audio")
    a.add_argument("--data", metavar="DIR_OR_FILE", help="audio files to publish (or --from-mic)")
    a.add_argument("--from-mic", action="store_true",
                   help="publish a live microphone as one stream (--stream) until Ctrl-C or --duration")
    a.add_argument("--device", metavar="D", help="with --from-mic: input device index or name")
    a.add_argument("--stream", default="mic", help="with --from-mic: the stream id (the message key)")
    a.add_argument("--machine", help="with --from-mic: the machine header")
    a.add_argument("--duration", type=float, metavar="S", help="with --from-mic: stop after S seconds")
    a.add_argument("--streams", type=int, help="fan the files out to N stream ids")
    a.add_argument("--prefix", default="", help="stream id prefix, e.g. 'line3/'")
    a.add_argument("--realtime", action="store_true", help="pace at real time")
    a.add_argument("--chunk-ms", type=float, default=100.0)
    a.add_argument("--loop", action="store_true", help="repeat each file forever")
    a.add_argument("--format", default="s16le", choices=("s16le", "f32le"))
    a.add_argument("--sample-rate", type=int, default=16000)
    a.add_argument("--start-ts", type=int, metavar="NS",
                   help="capture time of each stream's first sample, ns since epoch (default: now)")
    a.set_defaults(run=run_audio)
    s = kinds.add_parser("sensors", help="a sensor CSV as JSON readings")
    s.add_argument("--bootstrap", required=True, metavar="HOST:PORT")
    s.add_argument("--topic", default="machine-sensors")
    s.add_argument("--data", required=True, metavar="FILE.csv")
    s.add_argument("--stream", help="stream id (default: the file's stem)")
    s.add_argument("--time-column", help="timestamp column (ISO-8601 or ns); default: row index at 1 Hz")
    s.add_argument("--columns", help="comma-separated value columns (default: every numeric column)")
    s.add_argument("--realtime", action="store_true")
    s.add_argument("--speed", type=float, default=1.0, help="with --realtime: X times real time")
    s.set_defaults(run=run_sensors)


def _producer(bootstrap: str):
    from ..sinks.kafka import make_producer  # noqa: PLC0415

    return make_producer(bootstrap.split(","), linger_ms=20, batch_size=1 << 20,
                         max_request_size=8 << 20)


def mic_chunks(mic) -> Iterator[OutChunk]:
    """A ``MicrophoneSource``'s chunks to publish; ``position`` is the capture sample index, so
    a dropped capture block shows as a jump of ``ts`` (``seq`` stays contiguous)."""
    for c in mic:
        yield OutChunk(c.stream, c.samples, c.sample_rate, c.start_sample, c.machine)


def run_mic(args: argparse.Namespace) -> int:
    import signal  # noqa: PLC0415

    from ..sources.microphone import MicrophoneSource  # noqa: PLC0415

    sr = args.sample_rate
    mic = MicrophoneSource(sample_rate=sr, device=args.device, stream=args.prefix + args.stream,
                           machine=args.machine, block_ms=args.chunk_ms,
                           max_samples=round(args.duration * sr) if args.duration else None)
    mic.open()
    producer = _producer(args.bootstrap)
    # Ctrl-C / SIGTERM end the capture; what was captured is still published and flushed
    old = {sig: signal.signal(sig, lambda *_: mic.stop()) for sig in (signal.SIGINT, signal.SIGTERM)}
    chunks = mic_chunks(mic)
    st = None
    try:
        first = next(chunks, None)  # its capture time is the stream's ``ts`` origin
        if first is not None:
            log.info("publishing the microphone", extra={"device": mic.device.name, "stream": first.stream,
                                                         "topic": args.topic, "rate": mic.rate})
            start_ns = round(mic.time_origin_s * 1e9)
            st = publish_audio(producer, args.topic, _chain(first, chunks), fmt=args.format,
                               start_ts_ns=start_ns)
    finally:
        for sig, handler in old.items():
            signal.signal(sig, handler)
        mic.close()
        producer.flush()
        producer.close(timeout=10)
    log.info("microphone publishing stopped", extra={**mic.stats.to_dict(),
                                                   "messages": st.messages if st else None})
    return 0


def _chain(first: OutChunk, rest: Iterator[OutChunk]) -> Iterator[OutChunk]:
    yield first
    yield from rest


def run_audio(args: argparse.Namespace) -> int:
    if getattr(args, "from_mic", False):
        return run_mic(args)
    if not args.data:
        raise DataError("monitor produce audio: give --data DIR_OR_FILE or --from-mic")
    files = [c.path for c in list_clips(args.data)]
    chunks = file_chunks(files, sample_rate=args.sample_rate, chunk_ms=args.chunk_ms, streams=args.streams,
                         prefix=args.prefix, loop=args.loop)
    producer = _producer(args.bootstrap)
    try:
        st = publish_audio(producer, args.topic, chunks, fmt=args.format, start_ts_ns=args.start_ts,
                           realtime=args.realtime)
    finally:
        producer.close(timeout=10)
    print(f"published {st.messages} chunks ({st.bytes / 1e6:.1f} MB) of {st.streams} stream(s) to "
          f"{args.topic} in {st.seconds:.1f} s")
    return 0


def sensor_rows(path: Path, *, time_column: str | None = None, columns: list[str] | None = None):
    """(ts_ns, {column: value}) per CSV row; ``,`` or ``;`` separated; non-numeric cells skipped."""
    from ..sources.kafka_sensors import _ts_ns  # noqa: PLC0415

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
            ts = _ts_ns(int(ts_raw) if ts_raw.isdigit() else ts_raw.replace(" ", "T"), f"{path} row {i + 2}")
        values = {}
        for k, v in row.items():
            if k == time_column or (columns and k not in columns):
                continue
            try:
                values[k] = float(v)
            except (TypeError, ValueError):
                continue
        yield ts, values


def run_sensors(args: argparse.Namespace) -> int:
    path = Path(args.data)
    if not path.is_file():
        raise DataError(f"{path}: file not found")
    stream = args.stream or path.stem
    columns = args.columns.split(",") if args.columns else None
    producer = _producer(args.bootstrap)
    t0, first, n = time.monotonic(), None, 0
    try:
        for ts, values in sensor_rows(path, time_column=args.time_column, columns=columns):
            if args.realtime:
                first = ts if first is None else first
                delay = t0 + (ts - first) / 1e9 / args.speed - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
            producer.send(args.topic, key=stream.encode(),
                          value=json.dumps({"ts": ts, "values": values}, separators=(",", ":")).encode())
            n += 1
        producer.flush()
    finally:
        producer.close(timeout=10)
    print(f"published {n} readings of {stream} to {args.topic} in {time.monotonic() - t0:.1f} s")
    return 0
