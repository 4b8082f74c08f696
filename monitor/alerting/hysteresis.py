"""Hysteresis over window decisions: open after k of the last n over, close after m under."""
from __future__ import annotations

from collections import deque
from dataclasses import dataclass


@dataclass(frozen=True)
class HysteresisSpec:
    """The defaults every command and the service share (DESIGN §3): 2 of 3 open, 3 under close."""

    k: int = 2
    n: int = 3
    m: int = 3

    def __post_init__(self) -> None:
        if not (1 <= self.k <= self.n and self.m >= 1):
            raise ValueError(f"k ({self.k}) must be <= n ({self.n}), and k, n, m at least 1")


class Hysteresis:
    """Feeds one boolean per window; says when an event opens and when it closes."""

    def __init__(self, spec: HysteresisSpec = HysteresisSpec()) -> None:
        self.spec = spec
        self.recent: deque[bool] = deque(maxlen=spec.n)
        self.is_open = False
        self.under_run = 0

    def update(self, over: bool) -> str | None:
        self.recent.append(over)
        if not self.is_open:
            if sum(self.recent) >= self.spec.k:
                self.is_open, self.under_run = True, 0
                return "open"
            return None
        self.under_run = 0 if over else self.under_run + 1
        if self.under_run >= self.spec.m:
            self.is_open = False
            self.recent.clear()
            return "close"
        return None

    def state(self) -> dict:
        return {"recent": list(self.recent), "open": self.is_open, "under_run": self.under_run}

    def load(self, d: dict) -> None:
        self.recent = deque((bool(x) for x in d["recent"]), maxlen=self.spec.n)
        self.is_open, self.under_run = bool(d["open"]), int(d["under_run"])
