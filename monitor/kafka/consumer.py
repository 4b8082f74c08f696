"""The worker's Kafka consumer: librdkafka through confluent-kafka (``kafka.client: confluent``;
``auto``, the default, when it is installed) or kafka-python (pure Python), behind the few
kafka-python calls the worker makes.

Why a second client: at 10,000 audio chunks a second, kafka-python spends ~19 us of Python per
message in fetch parsing plus a network thread that competes with the scoring loop for the GIL;
librdkafka fetches and parses in C threads (~5 us of CPU per message measured here on Tansu,
including the Python message objects). The worker code stays the same: this adapter returns
kafka-python's ``TopicPartition`` keys, records with ``key``/``value``/``headers``/``offset``,
rebalance callbacks through a ``ConsumerRebalanceListener``, and raises kafka-python's
``KafkaError`` for client errors.
"""
from __future__ import annotations

import logging
from typing import Any, NamedTuple

from monitor.config import KafkaConfig
from monitor.errors import ConfigError
from monitor.kafka.connect import KafkaRefused, classify_client_error
from monitor.log_limits import LIBRDKAFKA_LOGGER

log = logging.getLogger(__name__)

class Record(NamedTuple):
    """One consumed message, with the attribute names of kafka-python's ``ConsumerRecord``."""

    offset: int
    key: bytes | None
    value: bytes | None
    headers: list[tuple[str, bytes]]
    timestamp: int | None = None  # ms since epoch (the message's Kafka timestamp), None if unknown


def resolve_client(name: str) -> str:
    """``auto`` -> ``confluent`` when confluent-kafka imports, else ``kafka-python``."""
    if name != "auto":
        return name
    try:
        import confluent_kafka  # noqa: F401, PLC0415
    except ImportError:
        return "kafka-python"
    return "confluent"


def make_consumer(k: KafkaConfig, *, client_id: str, client_options: dict[str, Any]):
    """A consumer for ``k.client`` (not yet subscribed); ``client_options`` = security options."""
    if resolve_client(k.client) == "confluent":
        return ConfluentConsumer(k, client_id=client_id, client_options=client_options)
    from kafka import KafkaConsumer  # noqa: PLC0415

    return KafkaConsumer(
        bootstrap_servers=k.bootstrap.split(","), group_id=k.group_id, client_id=client_id,
        enable_auto_commit=False, auto_offset_reset=k.auto_offset_reset,
        session_timeout_ms=k.session_timeout_ms, heartbeat_interval_ms=k.heartbeat_interval_ms,
        max_poll_records=k.max_poll_records, max_poll_interval_ms=k.max_poll_interval_ms,
        fetch_max_bytes=k.fetch_max_bytes, max_partition_fetch_bytes=k.max_partition_fetch_bytes,
        fetch_max_wait_ms=k.fetch_max_wait_ms, bootstrap_timeout_ms=10000, **client_options)


def _librdkafka_options(k: KafkaConfig, client_id: str) -> dict[str, Any]:
    from monitor.kafka.security import librdkafka_options  # noqa: PLC0415

    return {
        "bootstrap.servers": k.bootstrap, "group.id": k.group_id, "client.id": client_id,
        "enable.auto.commit": False, "auto.offset.reset": k.auto_offset_reset,
        "session.timeout.ms": k.session_timeout_ms, "heartbeat.interval.ms": k.heartbeat_interval_ms,
        "max.poll.interval.ms": k.max_poll_interval_ms, "fetch.max.bytes": k.fetch_max_bytes,
        "max.partition.fetch.bytes": k.max_partition_fetch_bytes, "fetch.wait.max.ms": k.fetch_max_wait_ms,
        **librdkafka_options(k),
    }


class ConfluentConsumer:
    """librdkafka's consumer with the kafka-python calls the worker uses."""

    def __init__(self, k: KafkaConfig, *, client_id: str, client_options: dict[str, Any]) -> None:
        try:
            import confluent_kafka  # noqa: PLC0415
        except ImportError:
            raise ConfigError("kafka.client: confluent needs the confluent-kafka package "
                              "(pip install 'machine-monitor[fast-kafka]')") from None
        from kafka.errors import KafkaError  # noqa: PLC0415
        from kafka.structs import TopicPartition  # noqa: PLC0415

        del client_options  # the same settings, mapped for librdkafka from ``k`` (kafka.security)
        self._ck, self._tp, self._error = confluent_kafka, TopicPartition, KafkaError
        self._max = k.max_poll_records
        self._listener = None
        self._closing = False
        #: a TLS or authentication failure librdkafka reported (raised by the next ``poll``)
        self.fatal: str | None = None
        conf = _librdkafka_options(k, client_id)
        # librdkafka's own lines go through our logging (JSON, rate-limited), not raw stderr
        conf.update(logger=logging.getLogger(LIBRDKAFKA_LOGGER), error_cb=self._on_error)
        self._c = self._call(confluent_kafka.Consumer, conf)

    def _on_error(self, err) -> None:
        """librdkafka's error callback: TLS and authentication failures end the worker."""
        text = err.str()
        if classify_client_error(f"{err.name()} {text}") != "transient" or err.fatal():
            self.fatal = self.fatal or text
        else:
            log.debug("Kafka client error: %s", text)

    def _call(self, fn, *args, **kw):
        """Run a librdkafka call; its errors become kafka-python's ``KafkaError``."""
        try:
            return fn(*args, **kw)
        except self._ck.KafkaException as exc:
            raise self._error(f"librdkafka: {exc}") from exc

    def _ours(self, parts) -> list:
        return [self._tp(p.topic, p.partition) for p in parts]

    def subscribe(self, *, topics: list[str], listener=None) -> None:
        self._listener = listener

        def assigned(_consumer, parts) -> None:
            if self._listener is not None and not self._closing:
                self._listener.on_partitions_assigned(self._ours(parts))

        def revoked(_consumer, parts) -> None:
            if self._listener is not None and not self._closing:
                self._listener.on_partitions_revoked(self._ours(parts))

        self._call(self._c.subscribe, list(topics), on_assign=assigned, on_revoke=revoked, on_lost=revoked)

    def poll(self, *, timeout_ms: int = 0) -> dict:
        """Up to ``max_poll_records`` messages, grouped by partition like kafka-python's ``poll``."""
        if self.fatal is not None:
            raise KafkaRefused(f"Kafka refused this client: {self.fatal}")
        out: dict = {}
        new = tuple.__new__  # a Record without the namedtuple constructor's Python frame
        for m in self._consume(timeout_ms / 1000.0):
            err = m.error()
            if err is not None:
                if err.code() != self._ck.KafkaError._PARTITION_EOF:
                    log.warning("Kafka consumer error: %s", err, extra={"topic": m.topic(),
                                                                        "partition": m.partition()})
                continue
            key = (m.topic(), m.partition())
            records = out.get(key)
            if records is None:
                records = out[key] = []
            ts_type, ts = m.timestamp()
            records.append(new(Record, (m.offset(), m.key(), m.value(), m.headers() or [],
                                        ts if ts_type != self._ck.TIMESTAMP_NOT_AVAILABLE else None)))
        return {self._tp(*key): records for key, records in out.items()}

    def _consume(self, timeout: float) -> list:
        """What is queued now, else the first message within ``timeout`` and what came with it.

        librdkafka's batch consume waits for a full batch or the timeout; kafka-python returns
        as soon as anything is there. Waiting to fill a batch added ~170 ms per chunk (bench).
        """
        msgs = self._call(self._c.consume, num_messages=self._max, timeout=0)
        if msgs or timeout <= 0:
            return msgs
        msgs = self._call(self._c.consume, num_messages=1, timeout=timeout)
        if msgs and self._max > 1:
            msgs += self._call(self._c.consume, num_messages=self._max - 1, timeout=0)
        return msgs

    def assignment(self) -> set:
        return set(self._ours(self._call(self._c.assignment)))

    def committed(self, tp):
        """The group's committed offset of ``tp``, None if there is none."""
        got = self._call(self._c.committed, [self._ck.TopicPartition(tp.topic, tp.partition)], timeout=10)
        return got[0].offset if got and got[0].offset >= 0 else None

    def commit(self, offsets: dict) -> None:
        parts = [self._ck.TopicPartition(tp.topic, tp.partition, om.offset) for tp, om in offsets.items()]
        self._call(self._c.commit, offsets=parts, asynchronous=False)

    def highwater(self, tp):
        """The partition's end offset as last seen in a fetch (no broker round trip)."""
        try:
            _, high = self._c.get_watermark_offsets(self._ck.TopicPartition(tp.topic, tp.partition),
                                                    cached=True)
        except self._ck.KafkaException:
            return None
        return high if high is not None and high >= 0 else None

    def close(self, autocommit: bool = False) -> None:
        """Leave the group; offsets are committed by the worker beforehand, never here."""
        del autocommit  # auto-commit is off: librdkafka commits nothing on close
        self._closing = True
        self._c.close()
