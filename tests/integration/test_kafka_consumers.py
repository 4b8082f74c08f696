"""The two consumers the worker can use answer the worker's calls alike, on a real broker:
records grouped by partition with key/value/headers/offset, the end offset behind the lag
metric, and the committed offset behind the resume rule."""
from __future__ import annotations

import time

import pytest

from monitor.kafka.broker import Broker, create_topics
from monitor.config import load_config
from monitor.sinks.kafka import make_producer
from monitor.kafka.consumer import make_consumer

pytestmark = pytest.mark.kafka


@pytest.mark.parametrize("client", ["kafka-python", "confluent"])
def test_consumer_records_end_offset_and_commits(tmp_path, client):
    from kafka import ConsumerRebalanceListener
    from kafka.structs import OffsetAndMetadata, TopicPartition

    with Broker() as broker:
        create_topics(broker.bootstrap, {"t": 2})
        p = make_producer([broker.bootstrap])
        for i in range(40):
            p.send("t", key=f"s{i % 4}".encode(), value=b"v%d" % i, partition=i % 2,
                   headers=[("seq", str(i).encode())])
        p.flush()
        p.close()
        cfg = tmp_path / "c.yaml"
        cfg.write_text(f'kafka:\n  bootstrap: "{broker.bootstrap}"\n  group_id: g-{client}\n'
                       f"  client: {client}\n  max_poll_records: 7\n")
        c = make_consumer(load_config(cfg).kafka, client_id="test", client_options={})
        assigned = []

        class Listener(ConsumerRebalanceListener):
            def on_partitions_assigned(self, parts):
                assigned.extend(parts)

            def on_partitions_revoked(self, parts):
                pass

        c.subscribe(topics=["t"], listener=Listener())
        got: dict = {}
        deadline = time.monotonic() + 30
        while sum(map(len, got.values())) < 40 and time.monotonic() < deadline:
            for tp, records in c.poll(timeout_ms=200).items():
                assert len(records) <= 7
                got.setdefault(tp, []).extend(records)
        try:
            parts = [TopicPartition("t", 0), TopicPartition("t", 1)]
            assert sorted(assigned) == parts and c.assignment() == set(parts)
            for tp in parts:
                records = got[tp]
                assert [r.offset for r in records] == list(range(20))
                assert [r.value for r in records] == [b"v%d" % (2 * k + tp.partition) for k in range(20)]
                assert records[3].key == f"s{(6 + tp.partition) % 4}".encode()
                assert dict(records[3].headers) == {"seq": str(6 + tp.partition).encode()}
                assert c.highwater(tp) == 20
                assert c.committed(tp) is None
            c.commit({parts[0]: OffsetAndMetadata(12, "", -1)})
            assert c.committed(parts[0]) == 12 and c.committed(parts[1]) is None
        finally:
            c.close(autocommit=False)
