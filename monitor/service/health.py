"""Per-worker HTTP endpoint: ``/healthz/live``, ``/healthz/ready`` and Prometheus ``/metrics``.

Live = the process runs its loop; ready = models loaded and the consumer has joined its group
(partitions assigned). Each worker process has its own registry and port (``port + index``).
"""
from __future__ import annotations

import logging
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest

log = logging.getLogger(__name__)

LATENCY_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.2, 0.35, 0.5, 0.75, 1.0, 1.5, 2.5, 5.0, 10.0)
BATCH_BUCKETS = (1, 4, 16, 64, 256, 1024, 4096, 16384, 65536)


class Metrics:
    """The service's counters. Labels stay low-cardinality (topic, model, kind) except the
    per-stream series, which exist for at most ``stream_limit`` streams per worker (the first
    seen); later streams share ``stream="other"`` in the counters and have no score gauge."""

    OTHER = "other"

    def __init__(self, registry: CollectorRegistry | None = None, *, stream_limit: int = 200) -> None:
        r = self.registry = registry or CollectorRegistry()
        self.stream_limit = stream_limit
        self._stream_labels: set[str] = set()
        self.stream_score = Gauge("monitor_stream_window_score", "latest alerting-window score",
                                  ["stream", "model"], registry=r)
        self.stream_threshold = Gauge("monitor_stream_threshold", "the threshold that score is held to",
                                      ["stream", "model"], registry=r)
        self.stream_events = Counter("monitor_stream_events", "events emitted, per stream",
                                     ["stream", "kind", "status"], registry=r)
        self.messages = Counter("monitor_messages", "Kafka messages consumed", ["topic"], registry=r)
        self.bytes = Counter("monitor_bytes", "Kafka message value bytes consumed", ["topic"], registry=r)
        self.windows = Counter("monitor_windows_scored", "alerting windows scored", ["model"], registry=r)
        self.batch = Histogram("monitor_batch_vectors", "vectors per scoring call", ["model"],
                               buckets=BATCH_BUCKETS, registry=r)
        self.latency = Histogram("monitor_chunk_to_score_seconds",
                                 "from a chunk's arrival (poll) to the end of the scoring call "
                                 "that consumed it", buckets=LATENCY_BUCKETS, registry=r)
        self.lag = Gauge("monitor_consumer_lag", "high watermark minus position", ["topic", "partition"],
                         registry=r)
        self.events = Counter("monitor_events", "events emitted", ["kind", "status"], registry=r)
        self.dead = Counter("monitor_dead_letters", "messages sent to the dead-letter topic", ["error"],
                            registry=r)
        self.duplicates = Counter("monitor_duplicate_chunks", "chunks dropped as already seen (seq)",
                                  registry=r)
        self.commits = Counter("monitor_commits", "offset commits", registry=r)
        self.streams = Gauge("monitor_streams", "streams with state in this worker", registry=r)
        self.ready = Gauge("monitor_ready", "1 when models are loaded and partitions assigned", registry=r)

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
        label = self.stream_label(stream)
        if label is not None and label != self.OTHER:
            self.stream_score.labels(label, model).set(score)
            self.stream_threshold.labels(label, model).set(threshold)

    def event(self, e: dict) -> None:
        kind = e.get("kind", "machine")
        self.events.labels(kind, e["status"]).inc()
        label = self.stream_label(e["stream"])
        if label is not None:
            self.stream_events.labels(label, kind, e["status"]).inc()


class HealthServer:
    def __init__(self, *, host: str, port: int, metrics: Metrics) -> None:
        self.metrics = metrics
        self.live = True
        self.ready = False
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802
                if self.path.startswith("/metrics"):
                    body, ctype, code = generate_latest(owner.metrics.registry), CONTENT_TYPE_LATEST, 200
                elif self.path.startswith("/healthz/live"):
                    code = 200 if owner.live else 503
                    body, ctype = (b"live\n" if owner.live else b"stopping\n"), "text/plain"
                elif self.path.startswith("/healthz/ready"):
                    code = 200 if owner.ready else 503
                    body, ctype = (b"ready\n" if owner.ready else b"not ready\n"), "text/plain"
                else:
                    body, ctype, code = b"not found\n", "text/plain", 404
                self.send_response(code)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer((host, port), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, name="health", daemon=True)
        self.thread.start()
        log.info("health endpoint up", extra={"url": f"http://{host}:{self.port}/healthz/ready"})

    def set_ready(self, ready: bool) -> None:
        self.ready = ready
        self.metrics.ready.set(1 if ready else 0)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
