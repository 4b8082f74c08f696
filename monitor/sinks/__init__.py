"""Event sinks: one file per sink."""
from .base import FanOut, Sink
from .jsonl import JsonlSink
from .stdout import StdoutSink, describe

__all__ = ["FanOut", "JsonlSink", "Sink", "StdoutSink", "describe"]
