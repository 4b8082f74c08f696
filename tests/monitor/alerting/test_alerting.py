"""Hysteresis, event records and deterministic event ids."""
from __future__ import annotations

import numpy as np

from models.threshold import Threshold
from monitor.alerting import AlertContext, Hysteresis, HysteresisSpec, StreamAlerts, event_id
from workers.windowing import WindowScore


def test_hysteresis_opens_on_2_of_3_and_closes_after_3_under():
    h = Hysteresis(HysteresisSpec(k=2, n=3, m=3))
    seq = [0, 1, 0, 1, 1, 0, 1, 0, 0, 0, 1, 0]
    got = [h.update(bool(x)) for x in seq]
    assert got == [None, None, None, "open", None, None, None, None, None, "close", None, None]


def test_a_single_spike_opens_nothing():
    h = Hysteresis()
    assert [h.update(x) for x in [False, True, False, False, True, False, False]] == [None] * 7


def _windows(scores, contrib=None):
    return [WindowScore("s1", k, k * 8000, k * 8000 + 16000, s, 26,
                        None if contrib is None else np.asarray(contrib, float)) for k, s in enumerate(scores)]


def test_events_carry_schema_peak_severity_and_explanation():
    thr = Threshold(1.0, params={"a": 4.0, "loc": 0.0, "scale": 0.1})
    ctx = AlertContext(stream="s1", scorer="ae", model_version="v1", sample_rate=16000,
                       machine="pump", feature_names=["low", "mid", "high"])
    alerts = StreamAlerts(ctx, thr)
    events = []
    for w in _windows([0.5, 2.0, 3.0, 0.5, 0.5, 0.5], contrib=[1, 2, 7]):
        events += alerts.update(w)
    assert [e["status"] for e in events] == ["open", "closed"]
    opened, closed = events
    assert opened["event_id"] == closed["event_id"]
    assert closed["schema"] == "anomaly-event/1" and closed["kind"] == "machine"
    assert closed["start"] == 0.5 and closed["end"] == 2.0  # windows 1..2 (0.5 s hop, 1 s long)
    assert closed["peak_score"] == 3.0 and closed["windows"] == 2
    assert closed["severity"] == round((3.0 - 1.0) / (2.0 * 0.1), 3)
    assert closed["explanation"]["top_features"][0]["name"] == "high"
    assert closed["machine"] == "pump" and closed["model_version"] == "v1"


def test_event_id_is_deterministic_and_specific():
    a = event_id(stream="s", scorer="ae", model_version="v1", start_sample=8000)
    assert a == event_id(stream="s", scorer="ae", model_version="v1", start_sample=8000)
    assert a != event_id(stream="s", scorer="ae", model_version="v2", start_sample=8000)
    assert a != event_id(stream="s", scorer="ae", model_version="v1", start_sample=16000)
    assert a != event_id(stream="t", scorer="ae", model_version="v1", start_sample=8000)


def test_finish_closes_an_open_event():
    alerts = StreamAlerts(AlertContext("s1", "ae", "v1", 16000), Threshold(1.0))
    for w in _windows([2.0, 2.0, 2.0]):
        alerts.update(w)
    (ev,) = alerts.finish()
    assert ev["status"] == "closed" and ev["closed_by"] == "end-of-stream"
    assert alerts.finish() == []
