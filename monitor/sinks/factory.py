"""Every command builds its event sinks here, from the same settings the ``sinks:`` config holds.

``BUILDERS`` maps a setting name to the sink it builds (or None when the setting is off). A new
sink is one file in ``monitor/sinks/`` plus one line here (and, for the service, one field in
``SinksConfig``).
"""
from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from monitor.sinks.base import FanOut, Sink
from monitor.sinks.jsonl import JsonlSink
from monitor.sinks.stdout import StdoutSink


@dataclass(frozen=True)
class SinkContext:
    """What a builder may need besides its setting: the Kafka producer, how to print."""

    producer: Any = None
    events_topic: str = ""
    json_lines: bool = False


def _kafka(on: bool, ctx: SinkContext) -> Sink | None:
    if not on or ctx.producer is None:
        return None
    from monitor.sinks.kafka import KafkaSink  # noqa: PLC0415 - the Kafka client only when used

    return KafkaSink(ctx.producer, ctx.events_topic)


BUILDERS: dict[str, Callable[[Any, SinkContext], Sink | None]] = {
    "kafka": _kafka,
    "jsonl": lambda path, ctx: JsonlSink(path) if path else None,
    "stdout": lambda on, ctx: StdoutSink(json_lines=ctx.json_lines) if on else None,
}


def build_sinks(settings: Mapping[str, Any], ctx: SinkContext = SinkContext(), *,
                extra: Iterable[Sink] = ()) -> FanOut:
    """One ``FanOut`` over the sinks ``settings`` switch on (unknown names are a bug: KeyError)."""
    sinks = [s for s in (BUILDERS[name](value, ctx) for name, value in settings.items()) if s is not None]
    return FanOut(sinks + list(extra))
