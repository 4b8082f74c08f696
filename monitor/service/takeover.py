"""Checkpointing audio streams to the state topic, and taking them over from it (DESIGN §4.4).

With checkpoints a partition commits the oldest offset its streams' *unfinished windows* need,
not the start of their last quiet run: an event open for hours no longer holds the commit at its
start. That is safe because the rest of what a restart needs (hysteresis, the open event, input
health) is in the snapshot written just before the commit (``state_topic``). A worker that gets
the partition restores its streams from the snapshot the group committed, then re-reads from the
committed offset: chunks before a stream's restore point are skipped, windows go on where they
stopped, and an ``open`` that was sent is not sent again. Streams with no state (the topic was
lost, checkpoints are off) fall back to being picked up mid-way, events withheld until their
first quiet point.

A mixin of ``Worker``: it shares the worker's book, streams, router, consumer and producer.
"""
from __future__ import annotations

import logging
import time
from collections import defaultdict
from typing import Any

from monitor.kafka.security import kafka_python_options
from monitor.service.messages import AudioState
from monitor.service.state_topic import FORMAT, StateTopic, state_topic_name

log = logging.getLogger("monitor.service.worker")


class StateCheckpoints:
    """``Worker``'s state topic (see the module docstring)."""

    state: StateTopic | None = None

    def _open_state(self) -> None:
        """Find or create the state topic (after the producer exists); off when it cannot be had."""
        k = self.cfg.kafka
        self.state, self._state_last, self._state_ended = None, {}, defaultdict(list)
        self._pending_state: dict = {}
        if not (self.cfg.service.checkpoint_state and k.audio_topic):
            return
        state = StateTopic(state_topic_name(k.group_id, k.audio_topic, k.state_topic),
                           bootstrap=k.bootstrap, client_options=kafka_python_options(k))
        if state.ensure(self._input_partitions(k.audio_topic)):
            self.state = state
            log.info("stream state checkpointed to %s", state.topic,
                     extra={"topic": state.topic, "partitions": state.partitions})

    def _input_partitions(self, topic: str) -> int:
        try:
            return max(1, len(self.producer.partitions_for(topic) or ()))
        except Exception as exc:  # noqa: BLE001 - unknown yet: the state topic gets one partition
            log.warning("partitions of %s unknown (%s)", topic, exc)
            return 1

    def _checkpointed(self, tp) -> bool:
        return (self.state is not None and tp.topic == self.cfg.kafka.audio_topic
                and self.state.covers(tp.partition))

    # ------------------------------------------------------------------ writing
    def _snapshot(self, tps, offsets: dict) -> dict | None:
        """Write a snapshot of each changed audio partition in ``tps``; returns the offsets of
        their markers on the state topic (to commit with ``offsets``), None if it failed."""
        from kafka.structs import TopicPartition  # noqa: PLC0415

        # a partition whose commit moves needs the snapshot of this very moment beside it; one
        # whose commit stays may take a newer snapshot (never older than its commit)
        todo = [tp for tp in tps if self._checkpointed(tp) and (
            tp in offsets or self.book.last.get(tp) != self._state_last.get(tp) or tp in self._state_ended)]
        if not todo:
            return {}
        if self.probe is not None and not self.probe.up:
            return None  # nothing can be made durable now; the commit waits for the broker
        by_tp: dict[Any, dict[str, dict]] = {tp: {} for tp in todo}
        for name, st in self.streams.items():
            if st.tp in by_tp:
                state = self._stream_state(name, st)
                if state is not None:
                    by_tp[st.tp][name] = state
        snaps = {tp.partition: {"input": (tp.topic, tp.partition, offsets.get(tp, self.book.committed.get(tp))),
                                "streams": by_tp[tp], "ended": self._state_ended.get(tp, [])} for tp in todo}
        markers = self.state.write(self.producer, snaps)
        self.metrics.state_bytes.inc(self.state.bytes_written)
        if markers is None:
            self._rebuild_producer()
            return None
        self._pending_state = {tp: self.book.last.get(tp) for tp in todo}
        return {TopicPartition(self.state.topic, p): off for p, off in markers.items()}

    def _snapshot_committed(self) -> None:
        for tp, last in self._pending_state.items():
            self._state_last[tp] = last
            self._state_ended.pop(tp, None)
        self._pending_state = {}

    def _stream_state(self, name: str, st) -> dict | None:
        points = [r.restore_point(name) for r in st.runners]
        if any(p is None for p in points):
            return None
        resume = self.book.resume_chunk(name, min(points)) or st.restored
        if resume is None:
            return None
        offset, seq, start = resume
        return {"v": FORMAT, "sample_rate": st.sample_rate, "machine": st.machine,
                "resume": {"offset": offset, "seq": seq, "start": start},
                "runners": [dict(r.stream_state(name) or {}, scorer=r.model.name) for r in st.runners]}

    def _ended(self, name: str, tp) -> None:
        """``name`` finished for good: a tombstone goes with its partition's next snapshot."""
        if self._checkpointed(tp):
            self._state_ended[tp].append(name)

    # ------------------------------------------------------------------ taking over
    def _take_over(self, assigned) -> None:
        """Restore the streams of newly assigned audio partitions from their committed snapshot."""
        from kafka.errors import KafkaError  # noqa: PLC0415
        from kafka.structs import TopicPartition  # noqa: PLC0415

        tps = [tp for tp in assigned if self._checkpointed(tp)]
        start = {}
        for tp in tps:
            try:
                off = self.consumer.committed(TopicPartition(self.state.topic, tp.partition))
            except KafkaError as exc:  # the broker went away: the others would wait as long
                log.warning("snapshots of %s unknown (%s): their streams are picked up mid-way",
                            sorted(f"{t.topic}[{t.partition}]" for t in tps), exc)
                return
            if off is not None:
                start[tp.partition] = off
        if not start:
            return
        t0 = time.monotonic()
        try:
            states = self.state.read(start)
        except KafkaError as exc:
            log.warning("state topic %s not read (%s): the streams of %s are picked up mid-way",
                        self.state.topic, exc, sorted(start))
            return
        now, events, n = time.monotonic(), [], 0
        for tp in tps:
            for name, state in states.get(tp.partition, {}).items():
                events += self._restore_stream(name, state, tp, now)
                n += 1
        self._emit(events)
        self.metrics.taken_over.inc(n)
        log.info("%d stream(s) taken over from %s in %.2f s", n, self.state.topic, time.monotonic() - t0,
                 extra={"streams": n, "partitions": sorted(start), "topic": self.state.topic})

    def _restore_stream(self, name: str, state: dict, tp, now: float) -> list[dict]:
        runners = self.router.for_stream(name)
        if not runners or name in self.streams:
            return []
        events = []
        for r, s in zip(runners, state["runners"]):
            if s.get("alerts") is not None and s.get("scorer") == r.model.name:
                events += r.restore_stream(name, s, sample_rate=state["sample_rate"], machine=state["machine"])
        res = state["resume"]
        self.streams[name] = AudioState(runners, state["sample_rate"], res["start"], res["seq"], tp,
                                        res["offset"], state["machine"],
                                        restored=(res["offset"], res["seq"], res["start"]))
        self.quiet.heard(name, now)
        return events
