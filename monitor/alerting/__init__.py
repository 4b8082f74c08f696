"""Alerting: thresholds applied to window scores, hysteresis, anomaly events."""
from monitor.alerting.events import HEALTH_KINDS, MACHINE, SCHEMA, event_id, make_event
from monitor.alerting.hysteresis import Hysteresis, HysteresisSpec
from monitor.alerting.stage import AlertContext, StreamAlerts

__all__ = ["HEALTH_KINDS", "MACHINE", "SCHEMA", "AlertContext", "Hysteresis", "HysteresisSpec",
           "StreamAlerts", "event_id", "make_event"]
