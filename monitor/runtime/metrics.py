"""The runtime's Prometheus metrics, defined once for whoever drives it (the service, listen).

Windows scored and events emitted, and per stream the latest window score, its threshold and
event counts. Labels stay low-cardinality (model, kind, status) except the per-stream series,
which exist for at most ``stream_limit`` streams (the first seen); later streams share
``stream="other"`` in the counters and have no score gauge.
"""
from __future__ import annotations

from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge


class RuntimeMetrics:
    OTHER = "other"

    def __init__(self, registry: CollectorRegistry, *, stream_limit: int = 200) -> None:
        r = self.registry = registry
        self.stream_limit = stream_limit
        self._stream_labels: set[str] = set()
        self.windows = Counter("monitor_windows_scored", "alerting windows scored", ["model"], registry=r)
        self.events = Counter("monitor_events", "events emitted", ["kind", "status"], registry=r)
        self.stream_score = Gauge("monitor_stream_window_score", "latest alerting-window score",
                                  ["stream", "model"], registry=r)
        self.stream_threshold = Gauge("monitor_stream_threshold", "the threshold that score is held to",
                                      ["stream", "model"], registry=r)
        self.stream_events = Counter("monitor_stream_events", "events emitted, per stream",
                                     ["stream", "kind", "status"], registry=r)

    def stream_label(self, stream: str) -> str | None:
        """``stream`` while under the cap (or already labelled), else "other"; None when off."""
        if self.stream_limit <= 0:
            return None
        if stream in self._stream_labels:
            return stream
        if len(self._stream_labels) < self.stream_limit:
            self._stream_labels.add(stream)
            return stream
        return self.OTHER

    def window_scored(self, stream: str, model: str, score: float, threshold: float) -> None:
        self.windows.labels(model).inc()
        label = self.stream_label(stream)
        if label is not None and label != self.OTHER:
            self.stream_score.labels(label, model).set(score)
            self.stream_threshold.labels(label, model).set(threshold)

    def event(self, e: dict[str, Any]) -> None:
        kind = e.get("kind", "machine")
        self.events.labels(kind, e["status"]).inc()
        label = self.stream_label(e["stream"])
        if label is not None:
            self.stream_events.labels(label, kind, e["status"]).inc()
