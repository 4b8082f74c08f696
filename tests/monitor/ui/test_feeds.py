"""The web view's feeds against real parts: a worker's real health server (/metrics), a JSON-lines
events file being appended to, and the command's wiring (URLs from a config)."""
from __future__ import annotations

import json

from monitor.config import load_config
from monitor.service.health import HealthServer, Metrics
from monitor.ui.app import metrics_urls
from monitor.ui.feeds import JsonlEvents, MetricsPoller
from monitor.ui.state import UiState

from tests.integration.kafka_utils import wait_for


def test_metrics_poller_reads_a_workers_scores():
    metrics = Metrics(stream_limit=10)
    server = HealthServer(host="127.0.0.1", port=0, metrics=metrics)
    state = UiState()
    poller = MetricsPoller(state, [f"http://127.0.0.1:{server.port}/metrics"], every_s=0.1).start()
    try:
        metrics.window_scored("line3/pump-02", "ae-v1", 12.5, 30.0)
        wait_for(lambda: state.history("line3/pump-02"), timeout=10, what="the first score")
        metrics.window_scored("line3/pump-02", "ae-v1", 45.0, 30.0)
        wait_for(lambda: len(state.history("line3/pump-02")) == 2, timeout=10, what="the second score")
        row = state.overview()["streams"][0]
        assert (row["score"], row["threshold"], row["model_version"]) == (45.0, 30.0, "ae-v1")
        assert row["trace"] == [12.5, 45.0] and row["ratio"] == 1.5
        # a hot-loaded version: the old version's gauge stands still and is not taken for news
        metrics.window_scored("line3/pump-02", "ae-v2", 20.0, 25.0)
        wait_for(lambda: state.overview()["streams"][0]["model_version"] == "ae-v2", timeout=10,
                 what="the new version")
        import time

        time.sleep(0.5)
        assert state.overview()["streams"][0]["trace"] == [12.5, 45.0, 20.0]
    finally:
        poller.stop()
        server.close()
    assert not state.feed_errors


def test_metrics_poller_reports_a_worker_that_is_down():
    state = UiState()
    poller = MetricsPoller(state, ["http://127.0.0.1:9/metrics"], every_s=0.1).start()
    try:
        wait_for(lambda: state.feed_errors.get("metrics"), timeout=10, what="the error")
        assert "127.0.0.1:9" in state.feed_errors["metrics"]
    finally:
        poller.stop()


def test_jsonl_feed_follows_the_file(tmp_path):
    path = tmp_path / "events.jsonl"
    state = UiState()
    feed = JsonlEvents(state, path).start()
    try:
        wait_for(lambda: state.feed_errors.get("events-file"), timeout=5, what="no file yet")
        ev = {"event_id": "a" * 24, "status": "open", "kind": "machine", "stream": "s", "severity": 0.3}
        with open(path, "a") as f:
            f.write(json.dumps(ev) + "\n" + json.dumps({**ev, "event_id": "b" * 24})[:20])  # a half line
        wait_for(lambda: state.event("a" * 24), timeout=5, what="the first event")
        assert state.event("b" * 24) is None
        with open(path, "a") as f:
            f.write(json.dumps({**ev, "event_id": "b" * 24})[20:] + "\n")
            f.write(json.dumps({**ev, "status": "closed"}) + "\n")
        wait_for(lambda: state.event("b" * 24), timeout=5, what="the completed line")
        wait_for(lambda: state.event("a" * 24)["status"] == "closed", timeout=5, what="the close")
        assert state.streams["s"].open_events == {"b" * 24}
    finally:
        feed.stop()


def test_metrics_urls_follow_the_workers_ports():
    cfg = load_config(None, env={}, overrides=["health.port=9200", "service.workers=3", "health.host=0.0.0.0"])
    assert metrics_urls(cfg) == [f"http://127.0.0.1:{9200 + i}/metrics" for i in range(3)]
    assert metrics_urls(load_config(None, env={}, overrides=["health.port=0"])) == []


def test_a_feed_whose_source_stays_away_says_so_once_not_every_retry(caplog):
    """The events topic's broker down: the first failure is logged, its retries (every
    ``retry_s``) are counted, and the page shows the error throughout."""
    import logging
    import time

    from monitor.config import KafkaConfig
    from monitor.kafka.broker import free_port
    from monitor.ui.feeds import KafkaEvents

    state = UiState()
    feed = KafkaEvents(state, KafkaConfig(bootstrap=f"127.0.0.1:{free_port()}"), topic="machine-events")
    feed.retry_s = 0.2
    with caplog.at_level(logging.WARNING, logger="monitor.ui.feeds"):
        feed.start()
        try:
            wait_for(lambda: state.feed_errors.get("events-topic"), timeout=20, what="the feed's error")
            time.sleep(3.0)  # many retries
        finally:
            feed.stop()
    lines = [r for r in caplog.records if r.getMessage() == "web view feed failed, retrying"]
    assert len(lines) == 1, [r.__dict__.get("error") for r in lines]
    assert "connection refused" in state.feed_errors["events-topic"]


def test_streams_beyond_the_workers_score_series_are_counted_on_the_overview():
    """A worker holding more streams than health.stream_metrics exports scores for the first
    ones only: the overview says how many more there are instead of leaving them out silently."""
    metrics = Metrics(stream_limit=3)
    server = HealthServer(host="127.0.0.1", port=0, metrics=metrics)
    state = UiState()
    poller = MetricsPoller(state, [f"http://127.0.0.1:{server.port}/metrics"], every_s=0.1, stream_limit=3).start()
    try:
        for i in range(5):
            metrics.window_scored(f"s{i}", "ae-v1", 1.0 + i, 30.0)
        metrics.streams.set(5)  # what the worker's partitions book says it holds
        wait_for(lambda: state.overview()["unscored"] == 2, timeout=10, what="2 streams without a score series")
        assert state.overview()["total"] == 3
        metrics.streams.set(3)
        wait_for(lambda: state.overview()["unscored"] == 0, timeout=10, what="the count to drop")
    finally:
        poller.stop()
        server.close()
    under = UiState()  # under the cap: a stream before its first window is no reason to speak
    m2 = Metrics(stream_limit=10)
    s2 = HealthServer(host="127.0.0.1", port=0, metrics=m2)
    p2 = MetricsPoller(under, [f"http://127.0.0.1:{s2.port}/metrics"], every_s=0.1, stream_limit=10).start()
    try:
        m2.window_scored("a", "ae-v1", 1.0, 30.0)
        m2.streams.set(4)
        wait_for(lambda: under.history("a"), timeout=10, what="the score")
        import time

        time.sleep(0.5)
        assert under.overview()["unscored"] == 0
    finally:
        p2.stop()
        s2.close()
