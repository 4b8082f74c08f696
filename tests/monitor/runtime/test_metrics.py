"""The runtime's metrics are defined once: the service and `listen` export the same names."""
from __future__ import annotations

from prometheus_client import CollectorRegistry

from monitor.runtime.metrics import RuntimeMetrics


def _names(registry) -> set[str]:
    return {m.name for m in registry.collect()}


def test_runtime_metrics_count_windows_and_events_per_stream():
    m = RuntimeMetrics(CollectorRegistry(), stream_limit=1)
    m.window_scored("a", "v1", 3.5, 2.0)
    m.window_scored("b", "v1", 9.0, 2.0)  # over the cap: counted, no per-stream gauge
    m.event({"stream": "b", "kind": "dead-input", "status": "open"})
    r = m.registry
    assert r.get_sample_value("monitor_windows_scored_total", {"model": "v1"}) == 2
    assert r.get_sample_value("monitor_stream_window_score", {"stream": "a", "model": "v1"}) == 3.5
    assert r.get_sample_value("monitor_stream_window_score", {"stream": "b", "model": "v1"}) is None
    assert r.get_sample_value("monitor_stream_events_total",
                              {"stream": "other", "kind": "dead-input", "status": "open"}) == 1
    assert r.get_sample_value("monitor_events_total", {"kind": "dead-input", "status": "open"}) == 1


def test_service_and_listen_export_the_runtime_metrics_under_one_name():
    from monitor.commands.listen import _Metrics
    from monitor.service.health import Metrics

    runtime = _names(RuntimeMetrics(CollectorRegistry()).registry)
    assert runtime <= _names(Metrics().registry)
    assert runtime <= _names(_Metrics(0).registry)  # port 0: any free port
