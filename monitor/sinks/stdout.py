"""Events on standard output: one readable line each, or JSON lines (``json=True``)."""
from __future__ import annotations

import json
import sys
from typing import Any, TextIO

from monitor.sinks.base import Sink


def describe(event: dict[str, Any]) -> str:
    """One line a maintenance engineer can read."""
    kind = event.get("kind", "machine")
    head = f"[{event['status'].upper():6s}] {event['stream']}  {kind}"
    span = _span(event["start"], event["end"])
    if kind != "machine":
        return f"{head}  {span}  {event.get('detail', '')}".rstrip()
    top = (event.get("explanation") or {}).get("top_features") or []
    bands = ", ".join(f["name"] for f in top[:3])
    return (f"{head}  {span}  peak={event['peak_score']:.4g} thr={event['threshold']:.4g} "
            f"severity={event['severity']:.2f} windows={event['windows']}"
            + (f"  bands: {bands}" if bands else "") + f"  id={event['event_id']}")


#: Event times above this are seconds since the epoch (a live stream's capture clock, DESIGN
#: §4.3), below it seconds into a replayed file.
EPOCH_S = 1e8


def _span(start: float, end: float) -> str:
    """Capture-clock times as UTC (what an engineer compares with the machine's log); file
    offsets as seconds."""
    if start < EPOCH_S:
        return f"t={start:.2f}-{end:.2f}s"
    from datetime import datetime, timezone  # noqa: PLC0415

    a, b = (datetime.fromtimestamp(t, timezone.utc) for t in (start, end))
    tail = b.strftime("%H:%M:%S.%f")[:-3] if a.date() == b.date() else b.strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]
    return f"{a.strftime('%Y-%m-%d %H:%M:%S.%f')[:-3]}-{tail} UTC"


class StdoutSink(Sink):
    def __init__(self, *, json_lines: bool = False, stream: TextIO | None = None) -> None:
        self.json_lines = json_lines
        self.stream = stream

    def write(self, event: dict[str, Any]) -> None:
        out = self.stream or sys.stdout
        out.write((json.dumps(event) if self.json_lines else describe(event)) + "\n")

    def flush(self) -> None:
        (self.stream or sys.stdout).flush()
