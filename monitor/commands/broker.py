"""``monitor broker``: an embedded Kafka-protocol broker (Tansu, in memory) in the foreground."""
from __future__ import annotations

import argparse
import signal
import threading

from monitor.kafka.broker import Broker, create_topics

HELP = "run a local Kafka-protocol broker (Tansu, memory storage) to try the service"


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("broker", help=HELP, description=HELP)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=9092)
    p.add_argument("--topic", action="append", default=[], metavar="NAME[:PARTITIONS]",
                   help="create this topic at start (repeatable), e.g. machine-audio:8")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    with Broker(host=args.host, port=args.port) as b:
        topics = {}
        for t in args.topic:
            name, _, parts = t.partition(":")
            topics[name] = int(parts or 1)
        if topics:
            create_topics(b.bootstrap, topics)
        print(f"broker on {b.bootstrap} (memory storage: everything is gone when it stops); "
              f"topics: {', '.join(f'{k}:{v}' for k, v in topics.items()) or 'none created'}; Ctrl-C stops",
              flush=True)
        while not stop.wait(0.5):
            if b.proc is not None and b.proc.poll() is not None:
                print(f"broker exited with code {b.proc.returncode}")
                return 1
    return 0
