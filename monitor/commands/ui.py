"""``monitor ui``: the web view beside a running group (the same --config as ``monitor run``).

It reads the events topic from its start (no consumer group: it takes nothing from the
workers), polls each worker's /metrics for the live window scores, serves the event audio from
``sinks.event_audio`` and, when ``--labelling`` is on, writes labels exactly as ``monitor label``
does. Binds 127.0.0.1 unless --host says otherwise; --token (or MONITOR_UI_TOKEN) guards it.
"""
from __future__ import annotations

import argparse
import os

HELP = "a live web view of a running group: streams, events with sound, labelling"


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("ui", help=HELP, description=HELP)
    p.add_argument("--config", metavar="FILE", help="the group's config (YAML)")
    p.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default loopback only)")
    p.add_argument("--port", type=int, default=8090, help="0 = any free port")
    p.add_argument("--token", default=os.environ.get("MONITOR_UI_TOKEN", ""),
                   help="required on every request (Bearer, basic-auth password or ?token=); "
                   "default $MONITOR_UI_TOKEN")
    p.add_argument("--labelling", action="store_true", help="show the fault / normal buttons "
                   "(labels go to MODEL_ROOT/labels.jsonl of the stream's model)")
    p.add_argument("--events-file", default="", help="follow this JSON-lines events file "
                   "instead of the events topic")
    p.add_argument("--metrics", action="append", default=[], metavar="URL",
                   help="another worker's /metrics (workers on other machines)")
    p.add_argument("--audio", default="", help="event audio store (default sinks.event_audio)")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from monitor.config import load_config  # noqa: PLC0415
    from monitor.ui.app import serve_until_stopped, start_web_view  # noqa: PLC0415
    from monitor.ui.server import UiOptions  # noqa: PLC0415

    cfg = load_config(args.config, overrides=args.set)
    view = start_web_view(cfg, UiOptions(host=args.host, port=args.port, token=args.token,
                                         labelling=args.labelling, audio_store=args.audio),
                          events_file=args.events_file, extra_metrics=args.metrics)
    print(f"web view on {view.url} (Ctrl-C to stop)", flush=True)
    serve_until_stopped(view)
    return 0
