"""``monitor produce``: publish audio files, a microphone or a sensor CSV to Kafka topics."""
from __future__ import annotations

import argparse
import json
import logging
import time
from pathlib import Path

from monitor.datasets import list_clips
from monitor.errors import DataError
from monitor.kafka.cli_options import add_kafka_arguments, kafka_settings
from monitor.kafka.producer import chain, file_chunks, mic_chunks, producer_for, publish_audio, sensor_rows

HELP = "publish audio files or a sensor CSV to Kafka topics (the service's wire format)"
log = logging.getLogger("monitor")


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("produce", help=HELP, description=HELP)
    kinds = p.add_subparsers(dest="kind", metavar="KIND", required=True)
    a = kinds.add_parser("audio", help="audio files as PCM chunk streams")
    add_kafka_arguments(a)
    a.add_argument("--topic", help="default: kafka.audio_topic (machine-audio)")
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
    add_kafka_arguments(s)
    s.add_argument("--topic", help="default: kafka.sensor_topic (machine-sensors)")
    s.add_argument("--data", required=True, metavar="FILE.csv")
    s.add_argument("--stream", help="stream id (default: the file's stem)")
    s.add_argument("--time-column", help="timestamp column (ISO-8601 or ns); default: row index at 1 Hz")
    s.add_argument("--columns", help="comma-separated value columns (default: every numeric column)")
    s.add_argument("--realtime", action="store_true")
    s.add_argument("--speed", type=float, default=1.0, help="with --realtime: X times real time")
    s.set_defaults(run=run_sensors)


def _connect(args: argparse.Namespace, topic_key: str):
    """(producer, topic) from ``--config`` and the Kafka flags."""
    k = kafka_settings(args)
    return producer_for(k), args.topic or getattr(k, topic_key)


def run_mic(args: argparse.Namespace) -> int:
    import signal  # noqa: PLC0415

    from monitor.sources.microphone import MicrophoneSource  # noqa: PLC0415

    sr = args.sample_rate
    mic = MicrophoneSource(sample_rate=sr, device=args.device, stream=args.prefix + args.stream,
                           machine=args.machine, block_ms=args.chunk_ms,
                           max_samples=round(args.duration * sr) if args.duration else None)
    producer, topic = _connect(args, "audio_topic")
    mic.open()
    # Ctrl-C / SIGTERM end the capture; what was captured is still published and flushed
    old = {sig: signal.signal(sig, lambda *_: mic.stop()) for sig in (signal.SIGINT, signal.SIGTERM)}
    chunks = mic_chunks(mic)
    st = None
    try:
        first = next(chunks, None)  # its capture time is the stream's ``ts`` origin
        if first is not None:
            log.info("publishing the microphone", extra={"device": mic.device.name, "stream": first.stream,
                                                         "topic": topic, "rate": mic.rate})
            start_ns = round(mic.time_origin_s * 1e9)
            st = publish_audio(producer, topic, chain(first, chunks), fmt=args.format,
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


def run_audio(args: argparse.Namespace) -> int:
    if getattr(args, "from_mic", False):
        return run_mic(args)
    if not args.data:
        raise DataError("monitor produce audio: give --data DIR_OR_FILE or --from-mic")
    files = [c.path for c in list_clips(args.data)]
    chunks = file_chunks(files, sample_rate=args.sample_rate, chunk_ms=args.chunk_ms, streams=args.streams,
                         prefix=args.prefix, loop=args.loop)
    producer, topic = _connect(args, "audio_topic")
    try:
        st = publish_audio(producer, topic, chunks, fmt=args.format, start_ts_ns=args.start_ts,
                           realtime=args.realtime)
    finally:
        producer.close(timeout=10)
    print(f"published {st.messages} chunks ({st.bytes / 1e6:.1f} MB) of {st.streams} stream(s) to "
          f"{topic} in {st.seconds:.1f} s")
    return 0


def run_sensors(args: argparse.Namespace) -> int:
    path = Path(args.data)
    if not path.is_file():
        raise DataError(f"{path}: file not found")
    stream = args.stream or path.stem
    columns = args.columns.split(",") if args.columns else None
    producer, topic = _connect(args, "sensor_topic")
    t0, first, n = time.monotonic(), None, 0
    try:
        for ts, values in sensor_rows(path, time_column=args.time_column, columns=columns):
            if args.realtime:
                first = ts if first is None else first
                delay = t0 + (ts - first) / 1e9 / args.speed - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
            producer.send(topic, key=stream.encode(),
                          value=json.dumps({"ts": ts, "values": values}, separators=(",", ":")).encode())
            n += 1
        producer.flush()
    finally:
        producer.close(timeout=10)
    print(f"published {n} readings of {stream} to {topic} in {time.monotonic() - t0:.1f} s")
    return 0
