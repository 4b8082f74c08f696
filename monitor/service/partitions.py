"""The worker's view of its partitions: where each stream may resume, what the group has
committed, rebalancing (streams taken over from the state topic when a partition arrives), and
the gauges that must be current whether or not a commit happened (readiness, fetch and commit
lag, live streams). A mixin of ``Worker``.
"""
from __future__ import annotations

import logging
import time

log = logging.getLogger("monitor.service.worker")

#: after a committed-offset lookup failed, how long the gauges go without asking again
COMMITTED_RETRY_S = 30.0


class PartitionState:
    """``Worker``'s partition bookkeeping (see the module docstring)."""

    committed_unknown_until = 0.0  # monotonic time before which no committed offset is asked

    def _resume(self, stream: str) -> int | None:
        if stream.startswith("sensor:"):
            name = stream[len("sensor:"):]
            points = [sr.resume_sample(name) for sr in self.router.sensors_for(name)]
            return None if not points or any(p is None for p in points) else min(points)
        st = self.streams.get(stream)
        if st is None:
            return None
        if self._checkpointed(st.tp):  # the rest is in the state topic: the unfinished windows
            points = [r.restore_point(stream) for r in st.runners]
        else:
            points = [r.resume_sample(stream) for r in st.runners]
        return None if any(p is None for p in points) else min(points)

    def _resumed(self, tp) -> bool:
        hit = self.resumed.get(tp)
        if hit is None:
            from kafka.errors import KafkaError  # noqa: PLC0415

            if time.monotonic() < self.committed_unknown_until:
                return True  # unknown as a lookup just failed: assume a restart, ask again later
            try:
                off = self.group_committed[tp] = self.consumer.committed(tp)
                hit = off is not None
            except KafkaError as exc:  # unknown: assume a restart (events wait for a quiet point)
                self.committed_unknown_until = time.monotonic() + COMMITTED_RETRY_S
                log.warning("committed offset of %s[%d] unknown (%s)", tp.topic, tp.partition, exc)
                hit = True
            self.resumed[tp] = hit
        return hit

    def _group_committed(self, tp) -> int | None:
        """The offset committed for ``tp``: ours since this worker committed it, else the group's
        (asked once per assignment; None when there is none or the broker cannot say)."""
        ours = self.book.committed.get(tp)
        if ours is not None:
            return ours
        if tp not in self.group_committed:
            from kafka.errors import KafkaError  # noqa: PLC0415

            # one lookup that timed out stands for the others for a while: each waits the
            # client's full timeout (librdkafka: 10 s) with the broker gone, one after another
            if time.monotonic() < self.committed_unknown_until:
                return None
            try:
                self.group_committed[tp] = self.consumer.committed(tp)
            except KafkaError as exc:
                self.committed_unknown_until = time.monotonic() + COMMITTED_RETRY_S
                log.warning("committed offset of %s[%d] unknown (%s)", tp.topic, tp.partition, exc)
                return None
        return self.group_committed[tp]

    def _report(self) -> None:
        """Readiness, lags and the stream gauge, every commit interval."""
        m = self.metrics
        assigned = self.consumer.assignment()
        up = self.probe.up if self.probe is not None else True
        m.assigned.set(len(assigned))
        m.broker_up.set(1 if up else 0)
        self._set_ready(bool(assigned) and up)
        m.streams.set(len(self.streams) + sum(1 for k in self.book.streams if k.startswith("sensor:")))
        if not up:
            return  # the last figures stay; a committed() round trip now would block the loop
        for tp in assigned:
            hw = self.consumer.highwater(tp)
            if hw is None:
                continue
            labels = (tp.topic, str(tp.partition))
            last = self.book.last.get(tp)
            committed = self._group_committed(tp)
            if last is not None:
                m.lag.labels(*labels).set(max(0, hw - last - 1))
            elif committed is not None:
                m.lag.labels(*labels).set(max(0, hw - committed))
            if committed is not None:
                m.commit_lag.labels(*labels).set(max(0, hw - committed))

    def _set_ready(self, ready: bool) -> None:
        if self.health is not None:
            self.health.set_ready(ready)
        self.metrics.ready.set(1 if ready else 0)

    # ---------------------------------------------------------------- rebalancing
    def on_revoked(self, revoked) -> None:
        if not revoked:
            return
        log.info("partitions revoked", extra={"partitions": sorted(f"{t.topic}[{t.partition}]" for t in revoked)})
        self.take_over_pending.difference_update(revoked)
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
        for tp in revoked:
            self.group_committed.pop(tp, None)
            for gauge in (self.metrics.lag, self.metrics.commit_lag):
                try:
                    gauge.remove(tp.topic, str(tp.partition))
                except KeyError:
                    pass

    def on_assigned(self, assigned) -> None:
        for tp in assigned:
            self.resumed.pop(tp, None)
            self.group_committed.pop(tp, None)
        log.info("partitions assigned", extra={"worker": self.index,
                                               "partitions": sorted(f"{t.topic}[{t.partition}]" for t in assigned)})
        # taken over after ``poll`` returns, before its records: kafka-python 3 refuses blocking
        # calls (``committed``) inside its rebalance callbacks
        self.take_over_pending.update(assigned)
        self._set_ready(bool(assigned) and (self.probe is None or self.probe.up))
        self.ready_at = time.monotonic()
