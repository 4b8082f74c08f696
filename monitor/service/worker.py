"""The worker loop: one Kafka consumer in a group, scoring every stream it is assigned.

poll -> decode (bad messages to the dead-letter topic) -> per stream place the chunk on its
absolute sample grid (sample 0 = the epoch, from the ``ts`` header; ``seq``/``ts`` jumps are
gaps) -> queue it in one ``StreamRunner`` per routed model -> when the micro-batch is due, score
all queued streams in one call per model -> events to the sinks -> every ``commit_interval_ms``
flush the sinks, then commit per partition the oldest offset a restart still needs
(``checkpoint.OffsetBook``). SIGTERM/SIGINT only set a flag; the loop then drains, flushes,
commits and closes.
"""
from __future__ import annotations

import json
import logging
import signal
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

from kafka import ConsumerRebalanceListener

from workers.batching import MicroBatcher
from workers.model import LoadedModel

from monitor.service.checkpoint import OffsetBook
from monitor.config import Config, to_dict
from monitor.service.health import BrokerProbe, HealthServer, Metrics
from monitor.service.messages import StreamMessages, AudioState
from monitor.service.partitions import PartitionState
from monitor.service.plausibility import Bounds
from monitor.service.process_tuning import keep_heap, tune_gc
from monitor.service.quiet import QuietStreams
from monitor.service.router import Router
from monitor.service.takeover import StateCheckpoints
from monitor.sinks.base import Sink
from monitor.sinks.dead_letter import DeadLetterSink
from monitor.sinks.factory import BUILDERS, SinkContext, build_sinks
from monitor.sinks.kafka import SinkError, make_producer
from monitor.kafka.consumer import make_consumer, resolve_client
from monitor.errors import ConfigError
from monitor.kafka.connect import KafkaRefused, KafkaUnreachable, classify_client_error, probe
from monitor.kafka.security import kafka_python_options, security_problems
from monitor.log_limits import SituationCounter
from monitor.sinks.reopen import AppendFile, ReopenRequest

log = logging.getLogger("monitor.service.worker")


@dataclass
class _Pending:
    arrivals: list[float] = field(default_factory=list)


class Worker(StreamMessages, PartitionState, StateCheckpoints):
    """One worker process: consumer, models, sinks, health endpoint."""

    def __init__(self, cfg: Config, *, index: int = 0, event_sinks: list[Sink] | None = None) -> None:
        self.cfg, self.index = cfg, index
        self.stopping = threading.Event()
        self.metrics = Metrics(stream_limit=cfg.health.stream_metrics)
        self.health: HealthServer | None = None
        self.consumer = None
        self.producer = None
        self.book = OffsetBook()
        self.streams: dict[str, AudioState] = {}
        self.quiet = QuietStreams(cfg.service.stream_idle_s)
        self.finished_quiet: OrderedDict[str, int] = OrderedDict()  # stream -> its next seq
        self.no_model = SituationCounter(log, "no model for stream; its messages go to the dead-letter topic")
        #: per partition: did this worker start it from a committed offset (a restart or a
        #: rebalance)? Then sensor streams first seen on it are picked up mid-way.
        self.resumed: dict[Any, bool] = {}
        self.take_over_pending: set = set()  # partitions assigned, streams not yet restored
        self.group_committed: dict[Any, int | None] = {}  # the group's offsets, asked once per assignment
        self.probe: BrokerProbe | None = None
        self.extra_sinks = event_sinks or []
        self.pending = _Pending()
        self.events_out = 0
        self.windows_file = None
        self.reopen_files = ReopenRequest()  # SIGHUP: logrotate moved events.jsonl / windows log
        self._last_commit = time.monotonic()
        self.batcher = MicroBatcher(max_batch=cfg.service.max_batch, max_wait_ms=cfg.service.max_wait_ms)
        self.tol_ns = int(cfg.service.gap_tolerance_ms * 1e6)
        self.bounds = Bounds.from_config(cfg.service)

    # ---------------------------------------------------------------- lifecycle
    def install_signal_handlers(self) -> None:
        def handler(signum, _frame):
            log.info("stop requested", extra={"signal": signal.Signals(signum).name})
            self.stopping.set()

        signal.signal(signal.SIGTERM, handler)
        signal.signal(signal.SIGINT, handler)
        self.reopen_files.install()

    def run(self) -> int:
        cfg = self.cfg
        log.info("effective config", extra={"worker": self.index, "config": to_dict(cfg)})
        if cfg.health.port:
            self.health = HealthServer(host=cfg.health.host, port=cfg.health.port + self.index,
                                       metrics=self.metrics, stall_s=cfg.health.stall_s,
                                       max_threads=cfg.health.max_threads,
                                       request_timeout_s=cfg.health.request_timeout_s)
        try:
            if cfg.service.windows_log:
                self.windows_file = AppendFile(cfg.service.windows_log)
            self.router = Router(cfg, on_window=self._on_window)
            if not self.router.runners and not self.router.sensor_runners:
                log.warning("no models configured: every stream goes to the dead-letter topic")
            if not self._connect():
                return 0
            self.probe = BrokerProbe(cfg.kafka.bootstrap)
            tune_gc(cfg.service.gc_gen0_threshold)
            keep_heap(cfg.service.heap_keep_mb)
            self._loop()
            self._shutdown()
            return 0
        finally:
            if self.health is not None:
                self.health.close()
            if self.probe is not None:
                self.probe.close()
            if self.windows_file is not None:
                self.windows_file.close()

    def _connect(self) -> bool:
        """Create consumer and producer, waiting until Kafka answers; each retry line says why.

        A refusal (TLS certificate, client certificate, authentication) is not waited out: it
        raises ``KafkaRefused`` (exit 2), since retrying cannot fix settings.
        """
        from kafka.errors import KafkaError  # noqa: PLC0415

        k = self.cfg.kafka
        problems = security_problems(k)
        if problems:
            raise ConfigError("; ".join(problems))
        opts = kafka_python_options(k)
        delay, attempt = 0.2, 0
        while not self.stopping.is_set():
            attempt += 1
            try:
                probe(k, timeout=min(5.0, k.connect_retry_max_s + 1))
                self.consumer = make_consumer(k, client_id=f"{k.client_id}-{self.index}",
                                              client_options=opts)
                self.producer = make_producer(k.bootstrap.split(","), client_options=opts,
                                              client_id=f"{k.client_id}-{self.index}-out")
                break
            except (KafkaError, OSError, KafkaUnreachable) as exc:
                if not isinstance(exc, KafkaUnreachable) and classify_client_error(exc) != "transient":
                    raise KafkaRefused(f"Kafka at {k.bootstrap} refused this client: "
                                       f"{type(exc).__name__}: {exc}") from None
                log.warning("waiting for Kafka at %s (attempt %d: %s); retrying in %.1f s",
                            k.bootstrap, attempt, exc if str(exc) else type(exc).__name__, delay,
                            extra={"bootstrap": k.bootstrap, "attempt": attempt})
                if self.consumer is not None:
                    self.consumer.close(autocommit=False)
                    self.consumer = None
                self.stopping.wait(delay)
                delay = min(delay * 2, k.connect_retry_max_s)
        if self.stopping.is_set():
            return False
        log.info("connected to Kafka", extra={"bootstrap": k.bootstrap, "group_id": k.group_id,
                                              "client": resolve_client(k.client)})
        s = self.cfg.sinks  # every sink setting that has a builder (sinks/factory.py)
        self.sink = build_sinks({name: getattr(s, name) for name in BUILDERS if hasattr(s, name)},
                                SinkContext(self.producer, k.events_topic), extra=self.extra_sinks)
        self.dlq = DeadLetterSink(self.producer, k.dead_letter_topic)
        self._open_state()
        topics = [t for t in (k.audio_topic, k.sensor_topic) if t]
        self.consumer.subscribe(topics=topics, listener=_Listener(self))
        return True

    def _loop(self) -> None:
        poll_ms = self.cfg.service.poll_timeout_ms
        commit_every = self.cfg.service.commit_interval_ms / 1000.0
        if self.health is not None:
            self.health.beat()
            self.health.looping = True
        while not self.stopping.is_set():
            left = self.batcher.time_left()
            timeout = poll_ms if left is None else max(0, min(poll_ms, int(left * 1000)))
            records = self.consumer.poll(timeout_ms=timeout)
            if self.take_over_pending:
                self._take_over(self.take_over_pending)
                self.take_over_pending = set()
            now = time.monotonic()
            self.quiet.polled(now, records=sum(map(len, records.values())),
                              full_at=self.cfg.kafka.max_poll_records)
            for tp, msgs in records.items():
                is_audio = tp.topic == self.cfg.kafka.audio_topic
                nbytes = 0
                for m in msgs:
                    nbytes += len(m.value) if m.value else 0
                    if is_audio:
                        self._on_audio(tp, m, now)
                    else:
                        self._on_sensor(tp, m, now)
                self.metrics.messages.labels(tp.topic).inc(len(msgs))
                self.metrics.bytes.labels(tp.topic).inc(nbytes)
            if self.batcher.due():
                self._score()
            self._finish_quiet(now)
            if time.monotonic() - self._last_commit >= commit_every:
                self._commit()
                self._report()
            if self.health is not None:
                self.health.beat()
            if self.reopen_files.take():
                self._reopen()

    def _reopen(self) -> None:
        """After SIGHUP: the files' paths opened afresh (what was written is flushed first)."""
        self.sink.reopen()
        if self.windows_file is not None:
            self.windows_file.reopen()
        log.info("files reopened (SIGHUP)", extra={"worker": self.index})

    def _shutdown(self) -> None:
        t0 = time.monotonic()
        self._score()
        self._commit()
        self._report()
        try:
            self.consumer.close(autocommit=False)
        finally:
            self.producer.close(timeout=5)
            self.sink.close()
        log.info("worker stopped", extra={"worker": self.index, "drain_s": round(time.monotonic() - t0, 3),
                                          "events": self.events_out})

    def stop(self) -> None:
        self.stopping.set()

    # ---------------------------------------------------------------- messages
    # ---------------------------------------------------------------- scoring and output
    def _score(self) -> None:
        if self.batcher.first_at is None:
            return
        events: list[dict] = []
        for r in self.router.runners:  # audio and sensor models alike: one scoring call each
            n = r.pipeline.pending_frames()
            if n:
                self.metrics.batch.labels(r.model.version).observe(n)
                events += r.flush()
        for sr in self.router.sensor_runners:
            n = sr.pending_rows()
            if n:
                self.metrics.batch.labels(sr.model.version).observe(n)
                events += sr.flush()
        done = time.monotonic()
        for t in self.pending.arrivals:
            self.metrics.latency.observe(done - t)
        self.pending.arrivals.clear()
        self.batcher.reset()
        self._emit(events)

    def _on_window(self, model: LoadedModel, w) -> None:
        self.metrics.window_scored(w.stream, model.version, w.score, model.threshold.value)
        if self.windows_file is not None:
            self.windows_file.write(json.dumps({"stream": w.stream, "scorer": model.name,
                                                "model_version": model.version, "index": w.index,
                                                "start_sample": w.start_sample, "score": w.score},
                                               separators=(",", ":")) + "\n")

    def _emit(self, events: list[dict]) -> None:
        for e in events:
            self.sink.write(e)
            self.metrics.event(e)
        self.events_out += len(events)

    def _commit(self, tps=None) -> None:
        """Flush sinks and dead letters, then commit what a restart no longer needs."""
        from kafka.errors import KafkaError  # noqa: PLC0415
        from kafka.structs import OffsetAndMetadata  # noqa: PLC0415

        self._last_commit = time.monotonic()
        if not self._flush_sinks():
            return
        if self.windows_file is not None:
            self.windows_file.flush()
        assigned = self.consumer.assignment()
        scope = [tp for tp in (tps if tps is not None else assigned) if tp in assigned]
        offsets = self.book.offsets(self._resume, scope)
        # the streams' state goes first, beside the offsets that rely on it (takeover.py)
        markers = self._snapshot(scope, offsets) if self.state is not None else {}
        if markers is None or not (offsets or markers):
            return
        try:
            self.consumer.commit({tp: OffsetAndMetadata(off, "", -1) for tp, off in {**offsets, **markers}.items()})
        except KafkaError as exc:
            log.warning("offset commit failed (%s); will retry", exc, extra={"offsets": len(offsets)})
            return
        self.book.mark_committed(offsets)
        self._snapshot_committed()
        self.metrics.commits.inc()

    def _flush_sinks(self) -> bool:
        """Flush events and dead letters. A failed send (a broker that restarted leaves
        kafka-python's idempotent producer failing ``InitProducerId``) rebuilds the producer and
        sends the failed records again; no commit this round, the next flush confirms them."""
        try:
            self.sink.flush()
            self.dlq.flush()
            return True
        except SinkError as exc:
            log.warning("publishing failed (%s); rebuilding the Kafka producer", exc)
            self._rebuild_producer()
            return False

    def _rebuild_producer(self) -> None:
        from kafka.errors import KafkaError  # noqa: PLC0415

        k = self.cfg.kafka
        try:
            new = make_producer(k.bootstrap.split(","), client_options=kafka_python_options(k),
                                client_id=f"{k.client_id}-{self.index}-out")
        except KafkaError as exc:
            log.warning("Kafka producer not rebuilt (%s); trying again at the next commit", exc)
            return
        old, self.producer = self.producer, new
        try:
            old.close(timeout=0)
        except Exception as exc:  # noqa: BLE001 - the old producer is broken; closing is best effort
            log.debug("closing the old producer: %s", exc)
        sent = sum(s.resend(new) for s in [*self.sink.sinks, self.dlq] if hasattr(s, "resend"))
        log.info("Kafka producer rebuilt; %d record(s) sent again", sent, extra={"records": sent})


class _Listener(ConsumerRebalanceListener):
    """kafka-python rebalance callbacks (they run inside ``poll``, on the loop's thread)."""

    def __init__(self, worker: Worker) -> None:
        self.worker = worker

    def on_partitions_revoked(self, revoked) -> None:
        self.worker.on_revoked(revoked)

    def on_partitions_assigned(self, assigned) -> None:
        self.worker.on_assigned(assigned)


def run_worker(cfg: Config, *, index: int = 0) -> int:
    if cfg.service.torch_threads:
        import torch  # noqa: PLC0415

        torch.set_num_threads(cfg.service.torch_threads)
    w = Worker(cfg, index=index)
    w.install_signal_handlers()
    return w.run()


def models_of(cfg: Config) -> list[LoadedModel]:
    return [r.model for r in Router(cfg).runners]
