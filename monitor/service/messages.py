"""The worker's handling of consumed messages: audio chunks and sensor readings.

Decoding and plausibility checks first (an unusable message goes to the dead-letter topic with
a code and its provenance); then per stream the chunk is placed on its absolute sample grid
(sample 0 = the epoch, from the ``ts`` header; ``seq``/``ts`` jumps are gaps) and queued in
one runner per routed model, and the offset book learns which offsets the stream still needs.
A mixin of ``Worker``: it shares the worker's book, router, sinks and metrics.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from models.errors import MonitorError

from monitor.alerting.events import make_event
from monitor.runtime.runner import StreamRunner
from monitor.sources.base import AudioChunk
from monitor.sources.kafka_audio import BadMessage, KafkaAudioChunk, decode_audio
from monitor.sources.kafka_sensors import decode_sensors

log = logging.getLogger("monitor.service.worker")

INPUT_SCORER = "input-health"


@dataclass
class _AudioState:
    runners: list[StreamRunner]
    sample_rate: int
    next_sample: int
    next_seq: int
    tp: Any
    last_offset: int
    machine: str | None = None


class StreamMessages:
    """``Worker``'s message handlers (see the module docstring)."""
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
            self.no_model.hit(chunk.stream, stream=chunk.stream, topic=tp.topic)
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
            self.no_model.hit(stream, stream=stream, topic=tp.topic)
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
