"""The state topic against the real broker: created once, snapshots written and read back from
a marker, newer records taken, tombstones after the marker not applied."""
from __future__ import annotations

import pytest

from monitor.kafka.broker import Broker
from monitor.service.state_topic import FORMAT, StateTopic, state_topic_name
from monitor.sinks.kafka import make_producer

pytestmark = pytest.mark.kafka


def _state(n: int) -> dict:
    return {"v": FORMAT, "n": n}


def test_snapshots_round_trip_from_the_committed_marker():
    with Broker() as broker:
        st = StateTopic(state_topic_name("g", "machine-audio"), bootstrap=broker.bootstrap, client_options={})
        assert st.topic == "g-machine-audio-state"
        assert st.ensure(2) and st.partitions == 2
        assert st.ensure(2) and st.partitions == 2  # found, not created again
        assert st.covers(1) and not st.covers(2)
        p = make_producer(broker.bootstrap)
        try:
            first = st.write(p, {0: {"input": ("machine-audio", 0, 10), "streams": {"a": _state(1), "b": _state(1)},
                                     "ended": []},
                                 1: {"input": ("machine-audio", 1, 3), "streams": {"c": _state(1)}, "ended": []}})
            assert set(first) == {0, 1}
            # a later snapshot on partition 0 (cut short: 'b' ended, 'a' moved on)
            second = st.write(p, {0: {"input": ("machine-audio", 0, 20), "streams": {"a": _state(2)},
                                      "ended": ["b"]}})
            assert second[0] > first[0]
        finally:
            p.close()
        got = st.read({0: first[0], 1: first[1]})
        # from the first marker: the newer 'a', and 'b' kept (its tombstone came after the marker)
        assert got == {0: {"a": _state(2), "b": _state(1)}, 1: {"c": _state(1)}}
        # from the second marker only what that snapshot holds
        assert st.read({0: second[0]}) == {0: {"a": _state(2)}}
        assert st.read({}) == {}
