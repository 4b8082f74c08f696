"""Per-stream Prometheus series stay within their cardinality cap."""
from __future__ import annotations

from prometheus_client import generate_latest

from monitor.service.health import Metrics


def _event(stream: str, status: str = "open", kind: str = "machine") -> dict:
    return {"stream": stream, "status": status, "kind": kind}


def test_streams_past_the_cap_share_the_other_label():
    m = Metrics(stream_limit=2)
    for s in ("a", "b", "c", "d"):
        m.window_scored(s, "v1", 1.5, 1.0)
        m.event(_event(s))
    m.event(_event("a", "closed"))
    text = generate_latest(m.registry).decode()
    assert 'monitor_stream_window_score{model="v1",stream="a"} 1.5' in text
    assert 'monitor_stream_threshold{model="v1",stream="b"} 1.0' in text
    assert 'stream="c"' not in text and 'stream="d"' not in text
    assert 'monitor_stream_events_total{kind="machine",status="open",stream="other"} 2.0' in text
    assert 'monitor_stream_events_total{kind="machine",status="closed",stream="a"} 1.0' in text
    assert 'monitor_events_total{kind="machine",status="open"} 4.0' in text


def test_zero_turns_per_stream_series_off():
    m = Metrics(stream_limit=0)
    m.window_scored("a", "v1", 1.0, 2.0)
    m.event(_event("a"))
    text = generate_latest(m.registry).decode()
    assert 'stream="a"' not in text and 'stream="other"' not in text
    assert 'monitor_events_total{kind="machine",status="open"} 1.0' in text
