"""The end-to-end load: N real-time 16 kHz streams in 100 ms s16le chunks, its own process.

``python -m monitor.bench.e2e_producer --bootstrap H:P --topic T --streams N --seconds S``
publishes with the service's own ``publish_audio`` (wire format of DESIGN §4.3), paced at
real time, and prints one JSON line: messages sent and how late the sends ran behind the
capture clock (a producer that cannot keep pace would make the worker look slow).
"""
from __future__ import annotations

import argparse
import json
import sys
import time

import numpy as np


def chunks(*, streams: int, seconds: float, chunk_ms: float, sample_rate: int, clips: list[np.ndarray],
           prefix: str, lateness: list[float], t0: list[float]):
    from monitor.kafka.producer import OutChunk  # noqa: PLC0415

    step = round(sample_rate * chunk_ms / 1000)
    names = [f"{prefix}{i:05d}" for i in range(streams)]
    n_chunks = int(round(seconds * 1000 / chunk_ms))
    for c in range(n_chunks):
        pos = c * step
        due = t0[0] + (pos + step) / sample_rate
        lateness.append(time.monotonic() - due)
        for i, name in enumerate(names):
            clip = clips[i % len(clips)]
            a = (pos + 997 * i) % (len(clip) - step)  # streams differ, each one continuous
            yield OutChunk(name, clip[a:a + step], sample_rate, pos, machine="bench")


class _LibrdkafkaProducer:
    """The load generator on librdkafka when confluent-kafka is installed: the simulated
    microphones then take ~3x less of this box's CPU (kafka-python's producer: ~0.37 cores at
    1,000 streams), which the worker under test and the broker share."""

    def __init__(self, bootstrap: str) -> None:
        from confluent_kafka import Producer  # noqa: PLC0415

        self._p = Producer({"bootstrap.servers": bootstrap, "linger.ms": 20, "acks": "all",
                            "enable.idempotence": True, "queue.buffering.max.messages": 1_000_000,
                            "batch.size": 1 << 20, "message.max.bytes": 8 << 20})

    def send(self, topic: str, *, key: bytes, value: bytes, headers) -> None:
        while True:
            try:
                self._p.produce(topic, value=value, key=key, headers=headers)
                break
            except BufferError:  # local queue full: let deliveries drain
                self._p.poll(0.01)
        self._p.poll(0)

    def flush(self) -> None:
        left = self._p.flush(30)
        if left:
            raise RuntimeError(f"{left} messages not delivered")

    def close(self, timeout: float = 10) -> None:
        self._p.flush(timeout)


def producer_for(bootstrap: str):
    try:
        return _LibrdkafkaProducer(bootstrap), "confluent"
    except ImportError:
        from monitor.sinks.kafka import make_producer  # noqa: PLC0415

        return make_producer(bootstrap.split(","), linger_ms=20, batch_size=1 << 20,
                             max_request_size=8 << 20), "kafka-python"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="e2e_producer")
    p.add_argument("--bootstrap", required=True)
    p.add_argument("--topic", required=True)
    p.add_argument("--streams", type=int, required=True)
    p.add_argument("--seconds", type=float, required=True)
    p.add_argument("--chunk-ms", type=float, default=100.0)
    p.add_argument("--prefix", default="bench/s")
    args = p.parse_args(argv)

    from monitor.kafka.producer import publish_audio  # noqa: PLC0415
    from monitor.synth import machine_sound  # noqa: PLC0415

    clips = [machine_sound(seconds=20.0, f0=90.0 + 17 * i, seed=100 + i) for i in range(4)]
    producer, client = producer_for(args.bootstrap)
    lateness: list[float] = []
    t0 = [time.monotonic()]
    start_ns = time.time_ns()
    print(json.dumps({"started_ns": start_ns}), flush=True)
    try:
        stats = publish_audio(producer, args.topic,
                              chunks(streams=args.streams, seconds=args.seconds, chunk_ms=args.chunk_ms,
                                     sample_rate=16000, clips=clips, prefix=args.prefix, lateness=lateness, t0=t0),
                              fmt="s16le", start_ts_ns=start_ns, realtime=True)
    finally:
        producer.close(timeout=10)
    late = np.maximum(np.asarray(lateness[1:] or [0.0]), 0.0)
    print(json.dumps({"messages": stats.messages, "bytes": stats.bytes, "seconds": stats.seconds,
                      "streams": stats.streams, "start_ns": start_ns, "client": client,
                      "lateness_max_s": float(late.max()), "lateness_p99_s": float(np.percentile(late, 99))}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
