"""``monitor devices``: the audio inputs ``monitor listen --device`` can use."""
from __future__ import annotations

import argparse
import json

from monitor.sources.microphone import MicrophoneError, list_devices

HELP = "list audio input devices (index, name, channels, default sample rate)"


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("devices", help=HELP, description=HELP)
    p.add_argument("--all", action="store_true", help="also list output-only devices")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    devices = list_devices(include_output_only=args.all)
    if not devices:
        every = list_devices(include_output_only=True)
        raise MicrophoneError("no audio input devices found" + (
            f" ({len(every)} output-only device(s); see --all)" if every else
            " (PortAudio sees no devices at all)") + "; connect a microphone or check that the "
            "sound server is reachable (PULSE_SERVER) and this user may use the sound devices")
    if args.json:
        print(json.dumps([d.__dict__ for d in devices], indent=2))
        return 0
    print(f"{'':2s}{'index':>5s}  {'name':40s} {'host API':10s} {'in ch':>5s} {'default rate':>12s}")
    for d in devices:
        mark = "*" if d.is_default else " "
        print(f"{mark:2s}{d.index:5d}  {d.name[:40]:40s} {d.hostapi[:10]:10s} {d.channels:5d} "
              f"{d.default_rate:12.0f}")
    print("* = default input; use `monitor listen --device INDEX_OR_NAME`")
    return 0
