"""Event sinks: one file per sink."""
from monitor.sinks.base import FanOut, Sink
from monitor.sinks.jsonl import JsonlSink
from monitor.sinks.stdout import StdoutSink, describe

__all__ = ["FanOut", "JsonlSink", "Sink", "StdoutSink", "describe"]
