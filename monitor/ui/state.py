"""What the web view knows: per stream the recent window scores, thresholds, input health and
open events; per event its last record. Fed by the events feed and the metrics poller
(``monitor/ui/feeds.py``), read by the HTTP server; one lock, and a change counter that the
server-sent-events stream waits on so a browser hears about a change without polling.
"""
from __future__ import annotations

import fnmatch
import json
import threading
import time
from collections import OrderedDict, deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from monitor.alerting.events import MACHINE

#: Score points kept per stream for the live chart (one per metrics poll).
HISTORY = 240
#: A stream whose score has not changed for this long is shown as quiet.
QUIET_S = 15.0
#: Events kept in memory (the oldest closed ones go first).
MAX_EVENTS = 20000


@dataclass
class StreamView:
    stream: str
    model_version: str = ""
    scorer: str = ""
    threshold: float | None = None
    history: deque = field(default_factory=lambda: deque(maxlen=HISTORY))  # (wall s, score)
    last_change: float = 0.0
    open_events: set = field(default_factory=set)
    health: dict = field(default_factory=dict)  # kind -> last input-health event

    @property
    def score(self) -> float | None:
        return self.history[-1][1] if self.history else None


@dataclass(frozen=True)
class Route:
    """One ``models[]`` entry: which streams, which model root (labels go beside it)."""

    streams: str
    model_root: Path


class UiState:
    def __init__(self, routes: list[Route] | None = None, *, quiet_s: float = QUIET_S) -> None:
        self.routes = routes or []
        self.quiet_s = quiet_s
        self.streams: dict[str, StreamView] = {}
        self.events: OrderedDict[str, dict[str, Any]] = OrderedDict()
        self.lock = threading.Lock()
        self.changed = threading.Condition(self.lock)
        self.version = 0
        self.feed_errors: dict[str, str] = {}  # feed name -> last error (shown on the page)
        self.unscored = 0  # streams the workers hold that have no score series (health.stream_metrics)
        self._scorers: dict[str, str] = {}  # model version -> scorer name
        self._raw: dict[tuple[str, str], float] = {}  # (stream, version) -> gauge at the last poll

    # -- writers -------------------------------------------------------------------------
    def _stream(self, name: str) -> StreamView:
        s = self.streams.get(name)
        if s is None:
            s = self.streams[name] = StreamView(name)
        return s

    def add_event(self, ev: dict[str, Any]) -> None:
        """One event record (open or closed; the last record of an id wins)."""
        eid, name = ev.get("event_id"), ev.get("stream")
        if not eid or not name:
            return
        with self.lock:
            s = self._stream(name)
            if ev.get("kind", MACHINE) == MACHINE:
                (s.open_events.add if ev.get("status") == "open" else s.open_events.discard)(eid)
                s.model_version = ev.get("model_version") or s.model_version
                s.scorer = ev.get("scorer") or s.scorer
            else:
                s.health[ev["kind"]] = ev
            self.events.pop(eid, None)
            self.events[eid] = ev
            while len(self.events) > MAX_EVENTS:
                self.events.popitem(last=False)
            self._bump()

    def add_scores(self, rows: list[tuple[str, str, float, float]], now: float | None = None) -> None:
        """(stream, model version, score, threshold) as the workers' gauges read now."""
        now = time.time() if now is None else now
        with self.lock:
            for stream, version, score, threshold in rows:
                if self._raw.get((stream, version)) == score:
                    continue  # the gauge did not move: no new window (or an older version's)
                self._raw[(stream, version)] = score
                s = self._stream(stream)
                s.history.append((now, score))
                s.threshold, s.model_version, s.last_change = threshold, version, now
            self._bump()

    def note_unscored(self, n: int) -> None:
        with self.lock:
            self.unscored = n

    def note_feed(self, name: str, error: str | None) -> None:
        with self.lock:
            if error:
                self.feed_errors[name] = error
            else:
                self.feed_errors.pop(name, None)

    def bump(self) -> None:
        with self.lock:
            self._bump()

    def _bump(self) -> None:
        self.version += 1
        self.changed.notify_all()

    def wait_change(self, seen: int, timeout: float) -> int:
        with self.changed:
            self.changed.wait_for(lambda: self.version != seen, timeout=timeout)
            return self.version

    # -- readers -------------------------------------------------------------------------
    def route_for(self, stream: str) -> Route | None:
        return next((r for r in self.routes if fnmatch.fnmatchcase(stream, r.streams)), None)

    def event(self, event_id: str) -> dict[str, Any] | None:
        with self.lock:
            return self.events.get(event_id)

    def overview(self, *, page: int = 0, per_page: int = 50, query: str = "",
                 sort: str = "severity", now: float | None = None) -> dict[str, Any]:
        """One page of streams, sorted (severity: open events' severity, then score/threshold)."""
        now = time.time() if now is None else now
        with self.lock:
            rows = [self._row(s, now) for s in self.streams.values() if query in s.stream]
            version, errors, unscored = self.version, dict(self.feed_errors), self.unscored
        if sort == "name":
            rows.sort(key=lambda r: r["stream"])
        else:
            rows.sort(key=lambda r: (-r["severity"], -(r["ratio"] or 0), r["stream"]))
        total = len(rows)
        page = max(0, min(page, max(0, (total - 1) // per_page)))
        return {"version": version, "total": total, "page": page, "per_page": per_page,
                "streams": rows[page * per_page:(page + 1) * per_page], "feed_errors": errors,
                "unhealthy": sum(r["state"] != "ok" for r in rows), "unscored": unscored}

    def _row(self, s: StreamView, now: float) -> dict[str, Any]:
        opened = [self.events[e] for e in s.open_events if e in self.events]
        health = [h for h in s.health.values() if h.get("status") == "open"]
        quiet = bool(s.history) and now - s.last_change > self.quiet_s
        state = "unhealthy" if health else ("quiet" if quiet or not s.history else "ok")
        ratio = (s.score / s.threshold) if s.score is not None and s.threshold else None
        return {"stream": s.stream, "model_version": s.model_version,
                "scorer": s.scorer or self._scorer(s.stream, s.model_version),
                "score": s.score, "threshold": s.threshold, "ratio": ratio, "state": state,
                "last_change_s": round(now - s.last_change, 1) if s.last_change else None,
                "severity": max((e.get("severity") or 0 for e in opened), default=0.0),
                "open_events": [{"event_id": e["event_id"], "severity": e.get("severity"),
                                 "start": e.get("start"), "peak_score": e.get("peak_score")}
                                for e in opened],
                "health": [{"kind": h["kind"], "status": h.get("status")} for h in health],
                "trace": [round(v, 6) for _, v in s.history][-60:]}

    def _scorer(self, stream: str, version: str) -> str:
        """The scorer of a model version, from its meta.json in the route's model root (cached)."""
        if version and version not in self._scorers:
            route = self.route_for(stream)
            name = ""
            for folder in ((route.model_root / version, route.model_root) if route else ()):
                try:
                    meta = json.loads((folder / "meta.json").read_text())
                except (OSError, ValueError):
                    continue
                if meta.get("model_version") == version:
                    name = meta.get("scorer", "")
                    break
            self._scorers[version] = name
        return self._scorers.get(version, "")

    def recent_events(self, *, limit: int = 50, stream: str = "") -> list[dict[str, Any]]:
        with self.lock:
            evs = [e for e in reversed(self.events.values())
                   if e.get("kind", MACHINE) == MACHINE and (not stream or e["stream"] == stream)]
        return evs[:limit]

    def history(self, stream: str) -> list[tuple[float, float]]:
        with self.lock:
            s = self.streams.get(stream)
            return list(s.history) if s else []


def read_labels(path: Path) -> list[dict[str, Any]]:
    """The label records of one model root's labels.jsonl (the last label of an event wins)."""
    if not path.is_file():
        return []
    out: dict[str, dict[str, Any]] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            rec = json.loads(line)
            out[rec["event_id"]] = rec
        except (json.JSONDecodeError, KeyError, TypeError):
            continue
    return list(out.values())
