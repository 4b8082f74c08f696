"""Files an operator rotates: reopened on SIGHUP, logrotate's convention.

logrotate renames ``events.jsonl`` and then signals the service (``postrotate``, here
``systemctl reload``, which sends SIGHUP). A process that kept writing to its open handle
would fill the renamed file forever; ``AppendFile.reopen`` closes it and opens the path
afresh, creating a new file. The handler itself only sets a flag (``ReopenRequest``): the
worker reopens between polls, never inside the signal handler, so no write is cut in half.
"""
from __future__ import annotations

import os
import signal
import threading
from pathlib import Path


class AppendFile:
    """A text file opened for appending, with ``reopen``; ``flush(sync=True)`` also fsyncs."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._f = open(self.path, "a", encoding="utf-8")

    @property
    def closed(self) -> bool:
        return self._f.closed

    def write(self, text: str) -> None:
        self._f.write(text)

    def flush(self, *, sync: bool = False) -> None:
        if not self._f.closed:
            self._f.flush()
            if sync:
                os.fsync(self._f.fileno())

    def reopen(self) -> None:
        """Flush and close the current file, open ``path`` again (a new file after a rename)."""
        if self._f.closed:
            return
        self.flush(sync=True)
        self._f.close()
        self._f = open(self.path, "a", encoding="utf-8")

    def close(self) -> None:
        if not self._f.closed:
            self.flush(sync=True)
            self._f.close()


class ReopenRequest:
    """Set by SIGHUP; ``take()`` is True once per signal (checked by the worker loop)."""

    def __init__(self) -> None:
        self._event = threading.Event()

    def install(self) -> None:
        signal.signal(signal.SIGHUP, lambda _signum, _frame: self._event.set())

    def take(self) -> bool:
        if self._event.is_set():
            self._event.clear()
            return True
        return False
