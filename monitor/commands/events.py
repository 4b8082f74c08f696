"""``monitor events``: what the service said, read from the events topic (no Kafka tools needed)."""
from __future__ import annotations

import argparse
import fnmatch
import json
import re
import sys
import time
from datetime import datetime, timezone

from monitor.errors import ConfigError
from monitor.kafka.cli_options import add_kafka_arguments, kafka_settings

HELP = "print the events the service published (readable lines or JSON), optionally following"
_DURATION = re.compile(r"^(\d+(?:\.\d+)?)\s*([smhd])$")


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("events", help=HELP, description=HELP)
    add_kafka_arguments(p)
    p.add_argument("--topic", help="default: kafka.events_topic (machine-events)")
    p.add_argument("--follow", "-f", action="store_true", help="keep printing new events until Ctrl-C")
    p.add_argument("--stream", metavar="GLOB", help="only streams matching this glob, e.g. 'line3/pump-*'")
    p.add_argument("--kind", metavar="K[,K]", help="only these kinds: machine, gap, input-dropout, "
                   "clipping, dead-input, flat-line, out-of-range")
    p.add_argument("--since", metavar="T", help="only events published since T: a duration back from "
                   "now (30s, 15m, 2h, 1d) or an ISO-8601 time (2026-12-03T08:00, UTC unless it says)")
    p.add_argument("--json", action="store_true", help="one JSON event per line, as published")
    p.set_defaults(run=run)


def parse_since(text: str, *, now: float | None = None) -> int:
    """``--since`` as ms since the epoch."""
    now = time.time() if now is None else now
    m = _DURATION.match(text.strip())
    if m:
        secs = float(m.group(1)) * {"s": 1, "m": 60, "h": 3600, "d": 86400}[m.group(2)]
        return int((now - secs) * 1000)
    try:
        t = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise ConfigError(f"--since {text!r}: expected a duration (30s, 15m, 2h, 1d) or an ISO-8601 "
                          "time (2026-12-03T08:00)") from None
    if t.tzinfo is None:
        t = t.replace(tzinfo=timezone.utc)
    return int(t.timestamp() * 1000)


def matches(event: dict, *, stream: str | None, kinds: set[str] | None) -> bool:
    if stream and not fnmatch.fnmatchcase(str(event.get("stream", "")), stream):
        return False
    return not kinds or event.get("kind", "machine") in kinds


def run(args: argparse.Namespace) -> int:
    from monitor.kafka.read_events import read_events  # noqa: PLC0415
    from monitor.sinks.stdout import describe  # noqa: PLC0415

    k = kafka_settings(args)
    topic = args.topic or k.events_topic
    since = parse_since(args.since) if args.since else None
    kinds = {x.strip() for x in args.kind.split(",") if x.strip()} if args.kind else None
    shown = skipped = 0
    try:
        for ts_ms, event, raw in read_events(k, topic=topic, follow=args.follow, since_ms=since):
            if since is not None and ts_ms is not None and ts_ms < since:
                continue
            if event is None or not isinstance(event, dict):
                skipped += 1
                continue
            if not matches(event, stream=args.stream, kinds=kinds):
                continue
            shown += 1
            if args.json:
                print(raw.decode("utf-8", "replace"), flush=args.follow)
            else:
                when = datetime.fromtimestamp(ts_ms / 1000, timezone.utc).strftime("%Y-%m-%d %H:%M:%S")
                print(f"{when}  {_describe(event, describe)}", flush=args.follow)
    except KeyboardInterrupt:
        pass
    note = f", {skipped} messages that are not JSON events skipped" if skipped else ""
    print(f"# {shown} events from {topic}{note}", file=sys.stderr)
    return 0


def _describe(event: dict, describe) -> str:
    try:
        return describe(event)
    except (KeyError, TypeError, ValueError):  # an event of another schema: show it whole
        return json.dumps(event, separators=(",", ":"))
