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

from monitor.alerting.events import make_event
from monitor.errors import MonitorError
from monitor.runtime.runner import StreamRunner
from monitor.service.plausibility import NS_PER_S, message_timestamp
from monitor.service.process_tuning import release_heap
from monitor.sources.base import AudioChunk
from monitor.sources.kafka_audio import BadMessage, KafkaAudioChunk, decode_audio
from monitor.sources.kafka_sensors import decode_sensors

log = logging.getLogger("monitor.service.worker")

INPUT_SCORER = "input-health"
#: names of streams finished as quiet remembered (so their return is a new run, not a
#: pick-up mid-way); a fixed bound, whatever the number of streams ever seen
FINISHED_QUIET_KEPT = 10_000
#: streams finished together after which freed memory is handed back to the system
RELEASE_AFTER = 100


@dataclass
class AudioState:
    runners: list[StreamRunner]
    sample_rate: int
    next_sample: int
    next_seq: int
    tp: Any
    last_offset: int
    machine: str | None = None
    #: (offset, seq, start sample) of the chunk a restore from the state topic resumes at,
    #: until the stream's first chunk after the restore is read again
    restored: tuple[int, int, int] | None = None


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
            chunk = decode_audio(m.key, m.value, m.headers, max_seconds=self.bounds.max_chunk_s)
            self.bounds.check_time(chunk.ts_ns, chunk.ts_ns + len(chunk.samples) * NS_PER_S // chunk.sample_rate,
                                   message_timestamp(m))
        except BadMessage as exc:
            self._dead(tp, m, exc.code, exc.detail)
            return
        self.quiet.heard(chunk.stream, now)
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
            # a stream this worker finished as quiet that comes back is a new run, not a pick-up
            back = self.finished_quiet.pop(chunk.stream, None) is not None
            warmup, anchor, start = chunk.seq != 0 and not back, m.offset, pos
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
            st = self.streams[chunk.stream] = AudioState(runners, chunk.sample_rate, start, 0, tp,
                                                          m.offset, chunk.machine)
        ac = AudioChunk(chunk.stream, chunk.samples, chunk.sample_rate, start, machine=chunk.machine,
                        pcm16=chunk.pcm16)
        for r in runners:
            r.push(ac, warmup=warmup)
        self.book.chunk(chunk.stream, tp, m.offset, start, anchor=anchor, seq=chunk.seq)
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
            self._ended(chunk.stream, tp)
            del self.streams[chunk.stream]
            self.router.forget(chunk.stream)
            self.quiet.forget(chunk.stream)

    def _gap(self, st: AudioState, chunk: KafkaAudioChunk, pos: int) -> None:
        """Close the stream's partial window and open events; report the gap as input health."""
        self._score()
        events = []
        for r in st.runners:
            events += r.end_stream(chunk.stream, reason="gap")
            r.finished.clear()
        missing = chunk.seq - st.next_seq
        detail = ("producer restarted (seq 0)" if chunk.seq == 0 else
                  f"{missing} chunk(s) missing (seq {st.next_seq}..{chunk.seq - 1})" if missing > 0 else
                  f"timestamp jumped by {(pos - st.next_sample) / chunk.sample_rate:+.3f} s")
        events.append(make_event(status="closed", kind="gap", stream=chunk.stream, machine=chunk.machine,
                                 scorer=INPUT_SCORER, model_version="-", start_sample=st.next_sample,
                                 end_sample=max(pos, st.next_sample), sample_rate=chunk.sample_rate,
                                 detail=detail))
        self._emit(events)

    def _on_sensor(self, tp, m, now: float) -> None:
        """Readings -> every routed sensor model (``SensorRunner``: grid, health checks, scoring)."""
        try:
            stream, readings = decode_sensors(m.key, m.value)
            self.bounds.check_time(min(r.ts_ns for r in readings), max(r.ts_ns for r in readings),
                                   message_timestamp(m))
        except BadMessage as exc:
            self._dead(tp, m, exc.code, exc.detail)
            return
        self.quiet.heard(f"sensor:{stream}", now, readings[-1].ts_ns)
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
            for sr in runners:  # queued: scored with the audio in the next micro-batch
                events += sr.feed(stream, ts, sr.channel_matrix(values), warmup=warmup, score=False)
        except MonitorError as exc:
            self._dead(tp, m, "bad-reading", str(exc)[:300])
            return
        finally:
            self._emit(events)
        st = runners[0].streams.get(stream)
        start = st.grid.index(float(ts[0])) if st is not None else 0
        self.book.chunk(key, tp, m.offset, start, anchor=m.offset if key not in self.book.streams else None)
        self.pending.arrivals.append(now)
        self.batcher.add(len(readings), now=now)

    # ---------------------------------------------------------------- streams that went quiet
    def _finish_quiet(self, now: float) -> None:
        """Finish every stream quiet for ``service.stream_idle_s`` as if ``eos`` had come: its
        last windows scored, open events closed, a ``stream-idle`` event, its state and lookup
        entries dropped, so its partition's commit moves on (``quiet.py``)."""
        quiet = self.quiet.quiet(now)
        if not quiet:
            return
        self._score()
        events: list[dict] = []
        for key, info in quiet:
            self.quiet.forget(key)
            if key.startswith("sensor:"):
                events += self._finish_quiet_sensor(key[len("sensor:"):], info)
            else:
                events += self._finish_quiet_audio(key)
        self._emit(events)
        if len(quiet) >= RELEASE_AFTER:
            import gc  # noqa: PLC0415

            gc.collect()
            release_heap()
        log.info("%d quiet stream(s) finished after %.0f s without a message", len(quiet),
                 self.quiet.idle_s, extra={"streams": len(quiet), "live_streams": len(self.quiet)})

    def _idle_detail(self, what: str) -> str:
        return f"no message for {self.quiet.idle_s:g} s after {what}: the stream was finished"

    def _finish_quiet_audio(self, stream: str) -> list[dict]:
        self.router.forget(stream)
        self.no_model.forget(stream)
        st = self.streams.pop(stream, None)
        if st is None:  # only dead letters so far: nothing to finish
            return []
        events: list[dict] = []
        for r in st.runners:
            events += r.end_stream(stream, reason="stream-idle")
            r.finished.clear()
        self.book.release(stream)
        self._ended(stream, st.tp)
        self.finished_quiet[stream] = st.next_seq
        while len(self.finished_quiet) > FINISHED_QUIET_KEPT:
            self.finished_quiet.popitem(last=False)
        events.append(make_event(
            status="closed", kind="stream-idle", stream=stream, machine=st.machine, scorer=INPUT_SCORER,
            model_version="-", start_sample=st.next_sample, end_sample=st.next_sample,
            sample_rate=st.sample_rate,
            detail=self._idle_detail(f"seq {st.next_seq - 1} ({st.tp.topic}[{st.tp.partition}] offset "
                                     f"{st.last_offset})")))
        return events

    def _finish_quiet_sensor(self, stream: str, last_ts_ns: int) -> list[dict]:
        import numpy as np  # noqa: PLC0415

        runners = self.router.sensors_for(stream)
        self.router.forget(stream)
        self.no_model.forget(stream)
        key = f"sensor:{stream}"
        events: list[dict] = []
        for sr in runners:
            st = sr.streams.get(stream)
            if st is None:
                continue
            grid = st.grid
            events += sr.feed(stream, np.zeros(0), np.zeros((0, len(sr.spec.channels))), end_of_stream=True)
            sr.finished.clear()
            if not any(e["kind"] == "stream-idle" for e in events) and grid.origin_s is not None:
                end = grid.index(last_ts_ns / 1e9) + 1
                events.append(make_event(
                    status="closed", kind="stream-idle", stream=stream, machine=st.machine,
                    scorer=INPUT_SCORER, model_version="-", start_sample=end, end_sample=end,
                    sample_rate=1.0 / sr.spec.step_s, time_origin_s=grid.origin_s,
                    id_base=grid.lattice_index, detail=self._idle_detail("its last reading")))
        self.book.release(key)
        return events
