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

import fnmatch
import json
import logging
import signal
import threading
import time
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from kafka import ConsumerRebalanceListener

from models.errors import MonitorError
from workers.batching import MicroBatcher
from workers.model import LoadedModel, load_model

from monitor.alerting.events import make_event
from monitor.service.checkpoint import OffsetBook
from monitor.config import Config, kafka_client_options, to_dict
from monitor.errors import ConfigError
from monitor.runtime.event_audio import EventAudioSpec, EventAudioStore
from monitor.service.health import HealthServer, Metrics
from monitor.runtime.model_watch import ModelWatcher
from monitor.service.process_tuning import keep_heap, tune_gc
from monitor.runtime.runner import StreamRunner
from monitor.sinks.base import Sink
from monitor.sinks.dead_letter import DeadLetterSink
from monitor.sinks.factory import SinkContext, build_sinks
from monitor.sinks.kafka import make_producer
from monitor.sources.base import AudioChunk
from monitor.sources.kafka_audio import BadMessage, KafkaAudioChunk, decode_audio
from monitor.kafka.consumer import make_consumer, resolve_client
from monitor.sources.kafka_sensors import decode_sensors

log = logging.getLogger("monitor.service.worker")

INPUT_SCORER = "input-health"


@dataclass
class _Route:
    pattern: str
    runner: StreamRunner


@dataclass
class _AudioState:
    runners: list[StreamRunner]
    sample_rate: int
    next_sample: int
    next_seq: int
    tp: Any
    last_offset: int
    machine: str | None = None


@dataclass
class _Pending:
    arrivals: list[float] = field(default_factory=list)


class Router:
    """Stream id -> the runners (one per model) whose glob matches it; cached per stream.

    Audio models get a ``StreamRunner`` (audio topic); sensor models (``features.kind``
    ``sensor``) a ``SensorRunner`` (sensor topic). A glob may route a stream to both kinds.
    """

    def __init__(self, cfg: Config, *, on_window=None) -> None:
        self.routes: list[_Route] = []
        self.runners: list[StreamRunner] = []
        self.sensor_routes: list[tuple[str, Any]] = []
        self.sensor_runners: list[Any] = []
        hyst, health = cfg.alerting.hysteresis(), cfg.alerting.health()
        loaded: dict[tuple[str, float | None], StreamRunner] = {}
        for i, r in enumerate(cfg.models):
            key = (r.model, r.threshold)
            if key not in loaded:
                try:
                    model = load_model(r.model, device=cfg.service.device, threshold_override=r.threshold)
                except MonitorError as exc:
                    raise ConfigError(f"models[{i}].model: {exc}") from None
                if model.meta.get("features", {}).get("kind") == "sensor":
                    from monitor.runtime.sensors import SensorRunner  # noqa: PLC0415

                    sensor = SensorRunner(model, None, hysteresis=hyst)
                    sensor.runner.on_window = partial(on_window, model) if on_window else None
                    loaded[key] = sensor
                    self.sensor_runners.append(sensor)
                    self.sensor_routes.append((r.streams, sensor))
                    continue
                runner = StreamRunner(model, None, hysteresis=hyst, health=health,
                                      watcher=_watcher(r.model, model, cfg, r.threshold),
                                      event_audio=_event_audio(cfg))
                if on_window is not None:  # the runner's model, which a hot reload replaces
                    runner.on_window = partial(_with_model, on_window, runner)
                loaded[key] = runner
                self.runners.append(runner)
            if isinstance(loaded[key], StreamRunner):
                self.routes.append(_Route(r.streams, loaded[key]))
            elif (r.streams, loaded[key]) not in self.sensor_routes:
                self.sensor_routes.append((r.streams, loaded[key]))
        self._cache: dict[str, list[StreamRunner]] = {}
        self._sensor_cache: dict[str, list[Any]] = {}

    def sensors_for(self, stream: str) -> list[Any]:
        hit = self._sensor_cache.get(stream)
        if hit is None:
            hit = []
            for pattern, runner in self.sensor_routes:
                if fnmatch.fnmatchcase(stream, pattern) and runner not in hit:
                    hit.append(runner)
            self._sensor_cache[stream] = hit
        return hit

    def for_stream(self, stream: str) -> list[StreamRunner]:
        hit = self._cache.get(stream)
        if hit is None:
            hit = []
            for r in self.routes:
                if fnmatch.fnmatchcase(stream, r.pattern) and r.runner not in hit:
                    hit.append(r.runner)
            self._cache[stream] = hit
        return hit


def _with_model(on_window, runner: StreamRunner, w) -> None:
    on_window(runner.model, w)


def _event_audio(cfg: Config) -> EventAudioStore | None:
    """The bounded store of event audio (``sinks.event_audio``), one per audio model."""
    s = cfg.sinks
    if not s.event_audio:
        return None
    return EventAudioStore(EventAudioSpec(s.event_audio, max_bytes=s.event_audio_max_mb << 20,
                                          retain_s=s.event_audio_retain_s,
                                          max_event_s=max(60.0, s.event_audio_retain_s)))


def _watcher(path: str, model: LoadedModel, cfg: Config, threshold: float | None):
    """A ``ModelWatcher`` on the route's model root (hot reload), or None: switched off, or the
    folder has no ``latest`` to follow (a fixed version folder outside a model root)."""
    if cfg.service.model_reload_s <= 0:
        return None
    try:
        w = ModelWatcher(path, current_version=model.version, every_s=cfg.service.model_reload_s,
                         device=cfg.service.device, threshold_override=threshold)
    except MonitorError as exc:
        log.info("no hot reload for %s: %s", path, exc)
        return None
    log.info("watching %s for new model versions every %.0f s", w.root, cfg.service.model_reload_s,
             extra={"model_root": str(w.root), "model_version": model.version})
    return w


class Worker:
    """One worker process: consumer, models, sinks, health endpoint."""

    def __init__(self, cfg: Config, *, index: int = 0, event_sinks: list[Sink] | None = None) -> None:
        self.cfg, self.index = cfg, index
        self.stopping = threading.Event()
        self.metrics = Metrics(stream_limit=cfg.health.stream_metrics)
        self.health: HealthServer | None = None
        self.consumer = None
        self.producer = None
        self.book = OffsetBook()
        self.streams: dict[str, _AudioState] = {}
        self.no_model_logged: set[str] = set()
        #: per partition: did this worker start it from a committed offset (a restart or a
        #: rebalance)? Then sensor streams first seen on it are picked up mid-way.
        self.resumed: dict[Any, bool] = {}
        self.extra_sinks = event_sinks or []
        self.pending = _Pending()
        self.events_out = 0
        self.windows_file = None
        self._last_commit = time.monotonic()
        self.batcher = MicroBatcher(max_batch=cfg.service.max_batch, max_wait_ms=cfg.service.max_wait_ms)
        self.tol_ns = int(cfg.service.gap_tolerance_ms * 1e6)

    # ---------------------------------------------------------------- lifecycle
    def install_signal_handlers(self) -> None:
        def handler(signum, _frame):
            log.info("stop requested", extra={"signal": signal.Signals(signum).name})
            self.stopping.set()

        signal.signal(signal.SIGTERM, handler)
        signal.signal(signal.SIGINT, handler)

    def run(self) -> int:
        cfg = self.cfg
        log.info("effective config", extra={"worker": self.index, "config": to_dict(cfg)})
        if cfg.health.port:
            self.health = HealthServer(host=cfg.health.host, port=cfg.health.port + self.index,
                                       metrics=self.metrics)
        try:
            if cfg.service.windows_log:
                self.windows_file = open(cfg.service.windows_log, "a", encoding="utf-8")
            self.router = Router(cfg, on_window=self._on_window)
            if not self.router.runners and not self.router.sensor_runners:
                log.warning("no models configured: every stream goes to the dead-letter topic")
            if not self._connect():
                return 0
            tune_gc(cfg.service.gc_gen0_threshold)
            keep_heap(cfg.service.heap_keep_mb)
            self._loop()
            self._shutdown()
            return 0
        finally:
            if self.health is not None:
                self.health.close()
            if self.windows_file is not None:
                self.windows_file.close()

    def _connect(self) -> bool:
        """Create consumer and producer, waiting (with a clear log line) until Kafka answers."""
        from kafka.errors import KafkaError  # noqa: PLC0415

        k = self.cfg.kafka
        opts = kafka_client_options(k)
        delay, attempt = 0.2, 0
        while not self.stopping.is_set():
            attempt += 1
            try:
                if not any(_answers(hp) for hp in k.bootstrap.split(",")):
                    raise ConnectionRefusedError("no bootstrap server answers")
                self.consumer = make_consumer(k, client_id=f"{k.client_id}-{self.index}",
                                              client_options=opts)
                self.producer = make_producer(k.bootstrap.split(","), client_options=opts,
                                              client_id=f"{k.client_id}-{self.index}-out")
                break
            except (KafkaError, OSError) as exc:
                log.warning("waiting for Kafka at %s (attempt %d: %s); retrying in %.1f s",
                            k.bootstrap, attempt, type(exc).__name__, delay,
                            extra={"bootstrap": k.bootstrap})
                if self.consumer is not None:
                    self.consumer.close(autocommit=False)
                    self.consumer = None
                self.stopping.wait(delay)
                delay = min(delay * 2, k.connect_retry_max_s)
        if self.stopping.is_set():
            return False
        log.info("connected to Kafka", extra={"bootstrap": k.bootstrap, "group_id": k.group_id,
                                              "client": resolve_client(k.client)})
        s = self.cfg.sinks
        self.sink = build_sinks({"kafka": s.kafka, "jsonl": s.jsonl, "stdout": s.stdout},
                                SinkContext(self.producer, k.events_topic), extra=self.extra_sinks)
        self.dlq = DeadLetterSink(self.producer, k.dead_letter_topic)
        topics = [t for t in (k.audio_topic, k.sensor_topic) if t]
        self.consumer.subscribe(topics=topics, listener=_Listener(self))
        return True

    def _loop(self) -> None:
        poll_ms = self.cfg.service.poll_timeout_ms
        commit_every = self.cfg.service.commit_interval_ms / 1000.0
        while not self.stopping.is_set():
            left = self.batcher.time_left()
            timeout = poll_ms if left is None else max(0, min(poll_ms, int(left * 1000)))
            records = self.consumer.poll(timeout_ms=timeout)
            now = time.monotonic()
            for tp, msgs in records.items():
                is_audio = tp.topic == self.cfg.kafka.audio_topic
                nbytes = 0
                for m in msgs:
                    nbytes += len(m.value) if m.value else 0
                    if is_audio:
                        self._on_audio(tp, m, now)
                    else:
                        self._on_sensor(tp, m)
                self.metrics.messages.labels(tp.topic).inc(len(msgs))
                self.metrics.bytes.labels(tp.topic).inc(nbytes)
            if self.batcher.due():
                self._score()
            if time.monotonic() - self._last_commit >= commit_every:
                self._commit()

    def _shutdown(self) -> None:
        t0 = time.monotonic()
        self._score()
        self._commit()
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
    def _dead(self, tp, m, code: str, detail: str) -> None:
        self.book.seen(tp, m.offset)
        self.dlq.send(key=m.key, value=m.value, headers=m.headers, error=code, detail=detail,
                      topic=tp.topic, partition=tp.partition, offset=m.offset)
        self.metrics.dead.labels(code).inc()
        log.debug("dead letter", extra={"topic": tp.topic, "partition": tp.partition,
                                        "offset": m.offset, "error": code, "detail": detail})

    def _on_audio(self, tp, m, now: float) -> None:
        try:
            chunk = decode_audio(m.key, m.value, m.headers)
        except BadMessage as exc:
            self._dead(tp, m, exc.code, exc.detail)
            return
        st = self.streams.get(chunk.stream)
        runners = st.runners if st is not None else self.router.for_stream(chunk.stream)
        if not runners:
            if chunk.stream not in self.no_model_logged:
                self.no_model_logged.add(chunk.stream)
                log.warning("no model for stream %s; its messages go to the dead-letter topic",
                            chunk.stream, extra={"stream": chunk.stream, "topic": tp.topic})
            self._dead(tp, m, "no-model", f"no models[].streams pattern matches {chunk.stream!r}")
            return
        wrong = [r.model.frontend.sample_rate for r in runners if r.model.frontend.sample_rate != chunk.sample_rate]
        if wrong:
            self._dead(tp, m, "sample-rate-mismatch",
                       f"chunk at {chunk.sample_rate} Hz, model expects {wrong[0]} Hz")
            return
        pos = chunk.grid_sample()
        warmup = False
        anchor = None
        if st is None:
            warmup, anchor, start = chunk.seq != 0, m.offset, pos
            if warmup:
                log.info("stream %s picked up mid-stream at seq %d: events wait for its first quiet "
                         "point", chunk.stream, chunk.seq,
                         extra={"stream": chunk.stream, "partition": tp.partition, "offset": m.offset})
        elif chunk.seq < st.next_seq and chunk.seq != 0:
            self.book.seen(tp, m.offset)  # a re-sent chunk already used: nothing new in it
            self.metrics.duplicates.inc()
            return
        elif chunk.seq == st.next_seq and abs(pos - st.next_sample) * 1e9 <= self.tol_ns * chunk.sample_rate:
            start = st.next_sample
        else:
            self._gap(st, chunk, pos)
            anchor, start = st.last_offset, pos
        if st is None or anchor is not None:
            st = self.streams[chunk.stream] = _AudioState(runners, chunk.sample_rate, start, 0, tp,
                                                          m.offset, chunk.machine)
        ac = AudioChunk(chunk.stream, chunk.samples, chunk.sample_rate, start, machine=chunk.machine,
                        pcm16=chunk.pcm16)
        for r in runners:
            r.push(ac, warmup=warmup)
        self.book.chunk(chunk.stream, tp, m.offset, start, anchor=anchor)
        st.next_sample = start + len(chunk.samples)
        st.next_seq = chunk.seq + 1
        st.tp, st.last_offset = tp, m.offset
        self.pending.arrivals.append(now)
        self.batcher.add(max(1, len(chunk.samples) // runners[0].model.frontend.frame_hop), now=now)
        if chunk.eos:
            self._score()
            events = []
            for r in runners:
                events += r.end_stream(chunk.stream)
                r.finished.clear()
            self._emit(events)
            self.book.release(chunk.stream)
            del self.streams[chunk.stream]

    def _gap(self, st: _AudioState, chunk: KafkaAudioChunk, pos: int) -> None:
        """Close the stream's partial window and open events; report the gap as input health."""
        self._score()
        events = []
        for r in st.runners:
            events += r.end_stream(chunk.stream, reason="gap")
            r.finished.clear()
        missing = chunk.seq - st.next_seq
        detail = (f"producer restarted (seq 0)" if chunk.seq == 0 else
                  f"{missing} chunk(s) missing (seq {st.next_seq}..{chunk.seq - 1})" if missing > 0 else
                  f"timestamp jumped by {(pos - st.next_sample) / chunk.sample_rate:+.3f} s")
        events.append(make_event(status="closed", kind="gap", stream=chunk.stream, machine=chunk.machine,
                                 scorer=INPUT_SCORER, model_version="-", start_sample=st.next_sample,
                                 end_sample=max(pos, st.next_sample), sample_rate=chunk.sample_rate,
                                 detail=detail))
        self._emit(events)

    def _on_sensor(self, tp, m) -> None:
        """Readings -> every routed sensor model (``SensorRunner``: grid, health checks, scoring)."""
        try:
            stream, readings = decode_sensors(m.key, m.value)
        except BadMessage as exc:
            self._dead(tp, m, exc.code, exc.detail)
            return
        runners = self.router.sensors_for(stream)
        if not runners:
            if stream not in self.no_model_logged:
                self.no_model_logged.add(stream)
                log.warning("no sensor model for stream %s; its messages go to the dead-letter topic", stream,
                            extra={"stream": stream, "topic": tp.topic})
            self._dead(tp, m, "no-model", f"no sensor model is routed to {stream!r}")
            return
        import numpy as np  # noqa: PLC0415

        ts = np.array([r.ts_ns for r in readings], dtype=np.float64) / 1e9
        values = [r.values for r in readings]
        missing = [sr.model.version for sr in runners if not set(sr.spec.channels) & set(values[0])]
        if missing:
            self._dead(tp, m, "missing-channels", f"none of the channels of model {missing[0]} "
                       f"in {sorted(values[0])[:8]}")
            return
        events: list[dict] = []
        key = f"sensor:{stream}"
        warmup = key not in self.book.streams and self._resumed(tp)
        if warmup and not any(stream in sr.streams for sr in runners):
            log.info("sensor stream %s picked up mid-stream: events wait for its first quiet point",
                     stream, extra={"stream": stream, "partition": tp.partition, "offset": m.offset})
        try:
            for sr in runners:
                events += sr.feed(stream, ts, sr.channel_matrix(values), warmup=warmup)
        except MonitorError as exc:
            self._dead(tp, m, "bad-reading", str(exc)[:300])
            return
        finally:
            self._emit(events)
        st = runners[0].streams.get(stream)
        start = st.grid.index(float(ts[0])) if st is not None else 0
        self.book.chunk(key, tp, m.offset, start, anchor=m.offset if key not in self.book.streams else None)

    # ---------------------------------------------------------------- scoring and output
    def _score(self) -> None:
        if self.batcher.first_at is None:
            return
        events: list[dict] = []
        for r in self.router.runners:
            n = r.pipeline.pending_frames()
            if n:
                self.metrics.batch.labels(r.model.version).observe(n)
                events += r.flush()
        done = time.monotonic()
        for t in self.pending.arrivals:
            self.metrics.latency.observe(done - t)
        self.pending.arrivals.clear()
        self.batcher.reset()
        self._emit(events)

    def _on_window(self, model: LoadedModel, w) -> None:
        self.metrics.windows.labels(model.version).inc()
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

    def _resume(self, stream: str) -> int | None:
        if stream.startswith("sensor:"):
            name = stream[len("sensor:"):]
            points = [sr.resume_sample(name) for sr in self.router.sensors_for(name)]
            return None if not points or any(p is None for p in points) else min(points)
        st = self.streams.get(stream)
        if st is None:
            return None
        points = [r.resume_sample(stream) for r in st.runners]
        return None if any(p is None for p in points) else min(points)

    def _resumed(self, tp) -> bool:
        hit = self.resumed.get(tp)
        if hit is None:
            from kafka.errors import KafkaError  # noqa: PLC0415

            try:
                hit = self.consumer.committed(tp) is not None
            except KafkaError as exc:  # unknown: assume a restart (events wait for a quiet point)
                log.warning("committed offset of %s[%d] unknown (%s)", tp.topic, tp.partition, exc)
                hit = True
            self.resumed[tp] = hit
        return hit

    def _commit(self, tps=None) -> None:
        """Flush sinks and dead letters, then commit what a restart no longer needs."""
        from kafka.errors import KafkaError  # noqa: PLC0415
        from kafka.structs import OffsetAndMetadata  # noqa: PLC0415

        self._last_commit = time.monotonic()
        self.sink.flush()
        self.dlq.flush()
        if self.windows_file is not None:
            self.windows_file.flush()
        assigned = self.consumer.assignment()
        offsets = self.book.offsets(self._resume, tps if tps is not None else assigned)
        offsets = {tp: off for tp, off in offsets.items() if tp in assigned}
        if not offsets:
            return
        try:
            self.consumer.commit({tp: OffsetAndMetadata(off, "", -1) for tp, off in offsets.items()})
        except KafkaError as exc:
            log.warning("offset commit failed (%s); will retry", exc, extra={"offsets": len(offsets)})
            return
        self.book.mark_committed(offsets)
        self.metrics.commits.inc()
        self.metrics.streams.set(len(self.streams))
        for tp in offsets:
            hw = self.consumer.highwater(tp)
            pos = self.book.last.get(tp)
            if hw is not None and pos is not None:
                self.metrics.lag.labels(tp.topic, str(tp.partition)).set(max(0, hw - pos - 1))

    # ---------------------------------------------------------------- rebalancing
    def on_revoked(self, revoked) -> None:
        if not revoked:
            return
        log.info("partitions revoked", extra={"partitions": sorted(f"{t.topic}[{t.partition}]" for t in revoked)})
        self._score()
        self._commit(set(revoked))
        for stream in self.book.drop_partitions(revoked):
            if stream.startswith("sensor:"):
                for sr in self.router.sensors_for(stream[len("sensor:"):]):
                    sr.streams.pop(stream[len("sensor:"):], None)
                    sr.runner.drop_stream(stream[len("sensor:"):])
                continue
            st = self.streams.pop(stream, None)
            if st is not None:
                for r in st.runners:
                    r.drop_stream(stream)
        # streams whose messages all went elsewhere (dead letters) hold no state to drop

    def on_assigned(self, assigned) -> None:
        for tp in assigned:
            self.resumed.pop(tp, None)
        log.info("partitions assigned", extra={"worker": self.index,
                                               "partitions": sorted(f"{t.topic}[{t.partition}]" for t in assigned)})
        if self.health is not None:
            self.health.set_ready(True)
        self.metrics.ready.set(1)
        self.ready_at = time.monotonic()


class _Listener(ConsumerRebalanceListener):
    """kafka-python rebalance callbacks (they run inside ``poll``, on the loop's thread)."""

    def __init__(self, worker: Worker) -> None:
        self.worker = worker

    def on_partitions_revoked(self, revoked) -> None:
        self.worker.on_revoked(revoked)

    def on_partitions_assigned(self, assigned) -> None:
        self.worker.on_assigned(assigned)


def _answers(host_port: str) -> bool:
    import socket  # noqa: PLC0415

    host, _, port = host_port.strip().rpartition(":")
    try:
        with socket.create_connection((host or "localhost", int(port)), timeout=1.0):
            return True
    except (OSError, ValueError):
        return False


def run_worker(cfg: Config, *, index: int = 0) -> int:
    if cfg.service.torch_threads:
        import torch  # noqa: PLC0415

        torch.set_num_threads(cfg.service.torch_threads)
    w = Worker(cfg, index=index)
    w.install_signal_handlers()
    return w.run()


def models_of(cfg: Config) -> list[LoadedModel]:
    return [r.model for r in Router(cfg).runners]
