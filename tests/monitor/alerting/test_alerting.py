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


def _run(alerts, scores):
    out = []
    for w in _windows(scores):
        out += alerts.update(w)
    return out + alerts.finish()


def test_an_excursion_under_the_confirmation_level_raises_nothing():
    """confirm 1.15: peaks of 1.1 open the hysteresis but never an event; the state stays
    quiet for the take-over (nothing open to close) and the next excursion is judged afresh."""
    alerts = StreamAlerts(AlertContext("s1", "lstm", "v1", 16000), Threshold(1.0, confirm=1.15))
    assert _run(alerts, [0.5, 1.1, 1.1, 1.05, 0.5, 0.5, 0.5, 1.1, 1.1]) == []
    assert alerts.opened_count == 0 and not alerts.raised and alerts.open is None


def test_a_confirmed_event_starts_at_its_first_window_over_the_threshold():
    alerts = StreamAlerts(AlertContext("s1", "lstm", "v1", 16000), Threshold(1.0, confirm=1.15))
    events = _run(alerts, [0.5, 1.05, 1.1, 1.2, 1.3, 0.5, 0.5, 0.5])
    assert [e["status"] for e in events] == ["open", "closed"]
    opened, closed = events
    # raised at window 3 (first peak >= 1.15), dated from window 1 (first over 1.0)
    assert opened["start"] == closed["start"] == 0.5 and opened["peak_score"] == 1.2
    assert closed["peak_score"] == 1.3 and closed["windows"] == 4 and closed["end"] == 3.0
    assert opened["event_id"] == closed["event_id"]


def test_without_confirm_every_opening_is_an_event():
    plain = _run(StreamAlerts(AlertContext("s1", "ae", "v1", 16000), Threshold(1.0)), [0.5, 1.1, 1.1, 0.5, 0.5, 0.5])
    assert [e["status"] for e in plain] == ["open", "closed"]


def test_an_unconfirmed_excursion_survives_a_state_round_trip():
    """The state topic carries a pending excursion: restored, its later peak raises the event
    from the same first window as an uninterrupted stream."""
    thr = Threshold(1.0, confirm=1.15)
    scores = [0.5, 1.05, 1.1, 1.2, 0.5, 0.5, 0.5]
    whole = _run(StreamAlerts(AlertContext("s1", "lstm", "v1", 16000), thr), scores)
    first = StreamAlerts(AlertContext("s1", "lstm", "v1", 16000), thr)
    ws = _windows(scores)
    head = [e for w in ws[:3] for e in first.update(w)]
    second = StreamAlerts(AlertContext("s1", "lstm", "v1", 16000), thr)
    second.load(first.state())
    tail = [e for w in ws[3:] for e in second.update(w)] + second.finish()
    assert head == [] and tail == whole and len(whole) == 2
