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


def _get(port: int, path: str) -> tuple[int | None, str]:
    import urllib.error
    import urllib.request

    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=3) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()
    except OSError:
        return None, ""


def test_live_turns_false_when_the_loop_stalls():
    from monitor.service.health import HealthServer

    h = HealthServer(host="127.0.0.1", port=0, metrics=Metrics(), stall_s=1.0)
    try:
        h.last_beat -= 5  # before the loop runs (waiting for Kafka), only stopping counts
        assert _get(h.port, "/healthz/live")[0] == 200
        h.looping = True
        code, body = _get(h.port, "/healthz/live")
        assert code == 503 and "stalled" in body
        h.beat()
        assert _get(h.port, "/healthz/live")[0] == 200
        assert _get(h.port, "/healthz/ready")[0] == 503
        h.set_ready(True)
        assert _get(h.port, "/healthz/ready")[0] == 200
        assert "monitor_loop_age_seconds" in _get(h.port, "/metrics")[1]
    finally:
        h.close()


def test_idle_connections_cannot_hold_more_than_max_threads():
    import socket
    import threading
    import time

    from monitor.service.health import HealthServer

    h = HealthServer(host="127.0.0.1", port=0, metrics=Metrics(), max_threads=3, request_timeout_s=0.5)
    before = threading.active_count()
    socks = [socket.create_connection(("127.0.0.1", h.port)) for _ in range(20)]  # send nothing
    try:
        time.sleep(0.2)
        assert threading.active_count() - before <= 3
        time.sleep(1.0)  # the request timeout closes the idle ones
        assert _get(h.port, "/healthz/live")[0] == 200
    finally:
        for s in socks:
            s.close()
        h.close()


def test_every_metric_is_in_the_readme_and_the_alert_rules_name_real_ones():
    import re
    from pathlib import Path

    import yaml

    root = Path(__file__).resolve().parents[3]
    names = {m.name for m in Metrics().registry.collect()}
    counters = {m.name for m in Metrics().registry.collect() if m.type == "counter"}
    table = set(re.findall(r"^\| `(monitor_\w+)` \|", (root / "README.md").read_text(), re.M))
    want = {n + "_total" if n in counters else n for n in names}
    assert table == want, (sorted(want - table), sorted(table - want))
    rules = yaml.safe_load((root / "deploy" / "prometheus-alerts.yml").read_text())
    exprs = [r["expr"] for g in rules["groups"] for r in g["rules"]]
    assert {r["alert"] for g in rules["groups"] for r in g["rules"]} == {
        "MonitorWorkerNotReady", "MonitorCommitLagGrowing", "MonitorNoWindowsScored"}
    used = {n for e in exprs for n in re.findall(r"monitor_\w+", e)}
    assert used <= want, sorted(used - want)


def test_a_health_port_in_use_is_one_line_naming_the_setting():
    import socket

    import pytest

    from monitor.errors import ConfigError
    from monitor.service.health import HealthServer, Metrics

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(ConfigError, match=rf"127\.0\.0\.1:{port} \(health\.host, health\.port.*in use"):
            HealthServer(host="127.0.0.1", port=port, metrics=Metrics())
