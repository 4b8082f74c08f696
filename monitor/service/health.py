"""Per-worker HTTP endpoint: ``/healthz/live``, ``/healthz/ready`` and Prometheus ``/metrics``.

Live = the worker's loop (or its wait for Kafka) came round within ``health.stall_s``; a hung
scoring call or a blocked sink turns it false, so an orchestrator restarts the process. Ready =
models loaded, partitions assigned, and a bootstrap broker answers (``BrokerProbe``): a worker
that cannot reach Kafka is not doing its job, whatever its client library still believes.
Each worker process has its own registry and port (``port + index``). The HTTP server closes
connections idle for ``health.request_timeout_s`` and serves at most ``health.max_threads``
requests at once (more are closed unanswered), so clients cannot pile up threads.
"""
from __future__ import annotations

import logging
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from monitor.errors import ConfigError
from monitor.runtime.metrics import RuntimeMetrics

log = logging.getLogger(__name__)

LATENCY_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.2, 0.35, 0.5, 0.75, 1.0, 1.5, 2.5, 5.0, 10.0)
BATCH_BUCKETS = (1, 4, 16, 64, 256, 1024, 4096, 16384, 65536)


class Metrics(RuntimeMetrics):
    """The service's metrics: the runtime's (windows, events, per-stream scores) plus Kafka's."""

    def __init__(self, registry: CollectorRegistry | None = None, *, stream_limit: int = 200) -> None:
        super().__init__(registry or CollectorRegistry(), stream_limit=stream_limit)
        r = self.registry
        self.messages = Counter("monitor_messages", "Kafka messages consumed", ["topic"], registry=r)
        self.bytes = Counter("monitor_bytes", "Kafka message value bytes consumed", ["topic"], registry=r)
        self.batch = Histogram("monitor_batch_vectors", "vectors per scoring call", ["model"],
                               buckets=BATCH_BUCKETS, registry=r)
        self.latency = Histogram("monitor_chunk_to_score_seconds",
                                 "from a chunk's arrival (poll) to the end of the scoring call "
                                 "that consumed it", buckets=LATENCY_BUCKETS, registry=r)
        self.lag = Gauge("monitor_consumer_lag", "fetch lag: high watermark minus the next offset "
                         "this worker reads", ["topic", "partition"], registry=r)
        self.commit_lag = Gauge("monitor_commit_lag", "high watermark minus the group's committed "
                                "offset: the messages a restart would read again", ["topic", "partition"],
                                registry=r)
        self.dead = Counter("monitor_dead_letters", "messages sent to the dead-letter topic", ["error"],
                            registry=r)
        self.duplicates = Counter("monitor_duplicate_chunks", "chunks dropped as already seen (seq)",
                                  registry=r)
        self.commits = Counter("monitor_commits", "offset commits", registry=r)
        self.state_bytes = Counter("monitor_state_snapshot_bytes", "bytes of stream state written to "
                                   "the state topic", registry=r)
        self.taken_over = Counter("monitor_streams_taken_over", "streams restored from the state topic "
                                  "when a partition was assigned", registry=r)
        self.streams = Gauge("monitor_streams", "streams with state in this worker", registry=r)
        self.ready = Gauge("monitor_ready", "1 when models are loaded, partitions assigned and a "
                           "broker answers", registry=r)
        self.broker_up = Gauge("monitor_broker_reachable", "1 when a bootstrap broker accepts a "
                               "connection (checked every few seconds)", registry=r)
        self.assigned = Gauge("monitor_assigned_partitions", "partitions assigned to this worker",
                              registry=r)
        self.loop_age = Gauge("monitor_loop_age_seconds", "seconds since the worker's loop last "
                              "came round (live turns false past health.stall_s)", registry=r)


class HealthServer:
    def __init__(self, *, host: str, port: int, metrics: Metrics, stall_s: float = 60.0,
                 max_threads: int = 8, request_timeout_s: float = 5.0) -> None:
        self.metrics = metrics
        self.live = True
        self.ready = False
        self.stall_s = stall_s
        self.last_beat = time.monotonic()
        self.looping = False  # before the loop (loading models, waiting for Kafka) only ``live`` counts
        owner = self

        class Handler(BaseHTTPRequestHandler):
            timeout = request_timeout_s  # socket timeout: an idle or slow client is dropped

            def do_GET(self) -> None:  # noqa: N802
                if self.path.startswith("/metrics"):
                    owner.metrics.loop_age.set(round(owner.loop_age(), 3))
                    body, ctype, code = generate_latest(owner.metrics.registry), CONTENT_TYPE_LATEST, 200
                elif self.path.startswith("/healthz/live"):
                    live, age = owner.is_live(), owner.loop_age()
                    code = 200 if live else 503
                    body = (b"live\n" if live else b"stopping\n" if not owner.live
                            else f"stalled: loop last came round {age:.0f} s ago\n".encode())
                    ctype = "text/plain"
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

        try:
            self.server = _BoundedHTTPServer((host, port), Handler, max_threads=max_threads)
        except OSError as exc:  # a port in use, an address this machine lacks
            raise ConfigError(f"health endpoint: cannot listen on {host}:{port} (health.host, health.port; "
                              f"worker N listens on health.port + N): {exc.strerror or exc}") from None
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, name="health", daemon=True)
        self.thread.start()
        log.info("health endpoint up", extra={"url": f"http://{host}:{self.port}/healthz/ready"})

    def beat(self) -> None:
        """The loop came round (called every iteration; a float store, no lock needed)."""
        self.last_beat = time.monotonic()

    def loop_age(self) -> float:
        return time.monotonic() - self.last_beat

    def is_live(self) -> bool:
        return self.live and (not self.looping or self.loop_age() <= self.stall_s)

    def set_ready(self, ready: bool) -> None:
        self.ready = ready
        self.metrics.ready.set(1 if ready else 0)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class _BoundedHTTPServer(ThreadingHTTPServer):
    """A thread per request, at most ``max_threads`` at once: a request past that is closed
    without an answer (the client retries) instead of starting yet another thread."""

    daemon_threads = True

    def __init__(self, address, handler, *, max_threads: int) -> None:
        self._slots = threading.BoundedSemaphore(max_threads)
        super().__init__(address, handler)

    def process_request(self, request, client_address) -> None:
        if not self._slots.acquire(blocking=False):
            self.shutdown_request(request)
            return
        try:
            super().process_request(request, client_address)
        except BaseException:
            self._slots.release()
            raise

    def process_request_thread(self, request, client_address) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._slots.release()


class BrokerProbe:
    """Whether any bootstrap broker accepts a TCP connection, checked every ``every_s`` in a
    daemon thread (a connect to a dead host can block for ``timeout_s``; the loop never waits)."""

    def __init__(self, bootstrap: str, *, every_s: float = 2.0, timeout_s: float = 1.0) -> None:
        self.hosts = [h.strip() for h in bootstrap.split(",") if h.strip()]
        self.every_s, self.timeout_s = every_s, timeout_s
        self.up = any(self._answers(h) for h in self.hosts)
        self._stop = threading.Event()
        self.thread = threading.Thread(target=self._run, name="broker-probe", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self.every_s):
            up = any(self._answers(h) for h in self.hosts)
            if up != self.up:
                log.warning("Kafka at %s %s", ",".join(self.hosts), "answers again" if up else "does not answer",
                            extra={"bootstrap": ",".join(self.hosts), "reachable": up})
            self.up = up

    def _answers(self, host_port: str) -> bool:
        host, _, port = host_port.rpartition(":")
        try:
            with socket.create_connection((host or "localhost", int(port)), timeout=self.timeout_s):
                return True
        except (OSError, ValueError):
            return False

    def close(self) -> None:
        self._stop.set()
