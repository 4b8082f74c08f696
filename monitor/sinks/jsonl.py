"""Events as JSON lines in a file (appended; flushed and fsynced on ``flush``; reopened on
``reopen``, after logrotate renamed it)."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from monitor.sinks.base import Sink
from monitor.sinks.reopen import AppendFile


class JsonlSink(Sink):
    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._f = AppendFile(self.path)

    def write(self, event: dict[str, Any]) -> None:
        self._f.write(json.dumps(event, separators=(",", ":")) + "\n")

    def flush(self) -> None:
        self._f.flush(sync=True)

    def reopen(self) -> None:
        self._f.reopen()

    def close(self) -> None:
        self._f.close()
