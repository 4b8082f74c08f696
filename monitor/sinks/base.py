"""The sink lifecycle: ``write`` events, ``flush`` before offsets are committed, ``close``;
``reopen`` after a log rotation."""
from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any


class Sink(ABC):
    @abstractmethod
    def write(self, event: dict[str, Any]) -> None:
        """Queue one event (may buffer)."""

    def flush(self) -> None:
        """Make every queued event durable; called before offsets are committed."""

    def close(self) -> None:
        self.flush()

    def reopen(self) -> None:
        """Reopen files after a log rotation (SIGHUP); sinks without files do nothing."""

    def __enter__(self) -> "Sink":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class FanOut(Sink):
    """Writes every event to several sinks."""

    def __init__(self, sinks: list[Sink]) -> None:
        self.sinks = sinks

    def write(self, event: dict[str, Any]) -> None:
        for s in self.sinks:
            s.write(event)

    def flush(self) -> None:
        for s in self.sinks:
            s.flush()

    def close(self) -> None:
        for s in self.sinks:
            s.close()

    def reopen(self) -> None:
        for s in self.sinks:
            s.reopen()
