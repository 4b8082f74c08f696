"""The service's state topic: each audio stream's runtime state, checkpointed at every commit.

Kafka Streams keeps a task's state in a changelog topic so that another instance can take the
task over; the worker does the same for its streams (DESIGN §4.4). At each commit, once the
events are durable, it writes a *snapshot* of each partition it owns to the state partition of
the same number: a marker record, then one record per live stream (key = stream id, value =
JSON: where the stream's unfinished window starts, its hysteresis, its open event, its input
health), and a tombstone for each stream that ended since the last snapshot. The same commit
that moves the input partition's offset stores the marker's offset for the state partition (a
consumer group keeps offsets of any partition it is told to). A worker given the partition reads
the state partition from that marker on and takes every stream over where it was.

Records after the marker are newer than it (a snapshot cut short by a crash, or one whose
commit failed): their states are never older than the committed input offset, so they are taken
too; their tombstones are not (a stream that ended after the committed snapshot still has
messages past the commit, and its state is what rebuilds them). Tombstones are there for
compaction: the topic is created with ``cleanup.policy=compact``, so a broker that compacts keeps
one record per live stream.
"""
from __future__ import annotations

import json
import logging
import time
from typing import Any

log = logging.getLogger("monitor.service.state")

#: key of a snapshot's first record (never a stream id: those are printable)
MARKER = b"\x00snapshot"
FORMAT = 1


def state_topic_name(group_id: str, audio_topic: str, configured: str = "") -> str:
    return configured or f"{group_id}-{audio_topic}-state"


class StateTopic:
    """Writes snapshots to, and reads them back from, one state topic."""

    def __init__(self, topic: str, *, bootstrap: str, client_options: dict[str, Any]) -> None:
        self.topic, self.bootstrap, self.client_options = topic, bootstrap, client_options
        self.partitions = 0  # state partitions there are (0 until ``ensure``)
        self.bytes_written = 0  # by the last ``write``

    def ensure(self, partitions: int) -> bool:
        """Create the topic (compacted, ``partitions`` partitions) unless it exists; False, with
        a warning naming the cause, when it cannot be used for all of them."""
        from kafka.admin import KafkaAdminClient, NewTopic  # noqa: PLC0415
        from kafka.errors import KafkaError, TopicAlreadyExistsError  # noqa: PLC0415

        try:
            admin = KafkaAdminClient(bootstrap_servers=self.bootstrap, request_timeout_ms=10000,
                                     **self.client_options)
        except KafkaError as exc:
            log.warning("state topic %s not checked (%s)", self.topic, exc)
            return False
        try:
            have = _partition_count(admin, self.topic)
            if have == 0:
                try:
                    admin.create_topics([NewTopic(self.topic, num_partitions=partitions,
                                                  replication_factor=_replication(admin),
                                                  topic_configs={"cleanup.policy": "compact"})])
                except TopicAlreadyExistsError:
                    pass
                have = _partition_count(admin, self.topic) or partitions
            self.partitions = have
        except KafkaError as exc:
            log.warning("state topic %s cannot be created (%s): per-stream state is not "
                        "checkpointed, so a restart resumes each stream at its last quiet point",
                        self.topic, exc, extra={"topic": self.topic})
            return False
        finally:
            admin.close()
        if have < partitions:
            log.warning("state topic %s has %d partition(s) for %d input partitions: streams on "
                        "partitions %d.. are not checkpointed (give it as many partitions as the "
                        "audio topic)", self.topic, have, partitions, have, extra={"topic": self.topic})
        return True

    def covers(self, partition: int) -> bool:
        return partition < self.partitions

    # ------------------------------------------------------------------ writing
    def write(self, producer, snapshots: dict[int, dict[str, Any]], *,
              timeout_s: float = 10.0) -> dict[int, int] | None:
        """Send one snapshot per state partition and wait for the broker; returns each marker's
        offset, or None when a send failed (nothing may be committed then).

        ``snapshots[p] = {"input": (topic, partition, offset to commit), "streams": {stream:
        state}, "ended": [stream, ...]}``."""
        from kafka.errors import KafkaError  # noqa: PLC0415

        markers, sent = {}, []
        self.bytes_written = 0
        try:
            for p, snap in snapshots.items():
                topic, part, offset = snap["input"]
                head = {"v": FORMAT, "snapshot": {"topic": topic, "partition": part, "offset": offset,
                                                  "streams": len(snap["streams"]), "at": time.time()}}
                markers[p] = producer.send(self.topic, key=MARKER, value=_dump(head), partition=p)
                for stream, state in snap["streams"].items():
                    value = _dump(state)
                    self.bytes_written += len(value)
                    sent.append(producer.send(self.topic, key=stream.encode(), value=value, partition=p))
                for stream in snap["ended"]:
                    sent.append(producer.send(self.topic, key=stream.encode(), value=None, partition=p))
            # bounded: a broker that went away must not stall the worker's loop (the records stay
            # queued; a later snapshot supersedes them)
            producer.flush(timeout=timeout_s)
        except KafkaError as exc:
            log.warning("state snapshot not written (%s); offsets are not committed this round", exc)
            return None
        failed = [f for f in [*markers.values(), *sent] if f.failed()]
        if failed:
            log.warning("state snapshot not written (%d send(s) failed: %s); offsets are not "
                        "committed this round", len(failed), failed[0].exception)
            return None
        return {p: f.value.offset for p, f in markers.items()}

    # ------------------------------------------------------------------ reading
    def read(self, start: dict[int, int], *, timeout_s: float = 30.0) -> dict[int, dict[str, dict]]:
        """The streams' states of each state partition, from offset ``start[p]`` (a marker) on."""
        from kafka import KafkaConsumer, TopicPartition  # noqa: PLC0415

        out: dict[int, dict[str, dict]] = {p: {} for p in start}
        if not start:
            return out
        c = KafkaConsumer(bootstrap_servers=self.bootstrap, group_id=None, enable_auto_commit=False,
                          **self.client_options)
        try:
            tps = [TopicPartition(self.topic, p) for p in start]
            c.assign(tps)
            for tp in tps:
                c.seek(tp, start[tp.partition])
            # A broker's reported end can lag the last batch (Tansu reports the last batch's
            # start + 1): read on past it until a poll comes back empty.
            ends = c.end_offsets(tps)
            seen = set()
            t0 = time.monotonic()
            while time.monotonic() < t0 + timeout_s:
                got = c.poll(timeout_ms=200)
                for tp, msgs in got.items():
                    seen.add(tp.partition)
                    for m in msgs:
                        _apply(out[tp.partition], m.key, m.value)
                # every partition starts at a marker: done once each gave something (or a
                # while passed) and a poll at the reported ends came back empty
                if not got and all(c.position(tp) >= ends[tp] for tp in tps) and (
                        len(seen) == len(tps) or time.monotonic() > t0 + 3.0):
                    break
            else:
                log.warning("state topic %s read for %.0f s without reaching its end: taking "
                            "what was read", self.topic, timeout_s)
        finally:
            c.close()
        return out


def _replication(admin) -> int:
    """The state topic's replication: three where the cluster has three brokers, else all."""
    try:
        brokers = len(admin.describe_cluster().get("brokers") or [])
    except Exception:  # noqa: BLE001 - an older broker or client: one copy
        brokers = 1
    return max(1, min(3, brokers))


def _partition_count(admin, topic: str) -> int:
    for t in admin.describe_topics([topic]):
        if t.get("name") == topic and not t.get("error_code"):
            return len(t.get("partitions") or [])
    return 0


def _dump(value: dict[str, Any]) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode()


def _apply(streams: dict[str, dict], key: bytes | None, value: bytes | None) -> None:
    if key is None or key == MARKER or value is None:
        return
    try:
        state = json.loads(value)
    except ValueError:
        log.warning("unreadable state record for %r skipped", key[:80])
        return
    if state.get("v") == FORMAT:
        streams[key.decode("utf-8", "replace")] = state
