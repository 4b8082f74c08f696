"""free_port hands out ports outside the range outgoing connections take their local ports from."""
from __future__ import annotations

import socket

from monitor.kafka import broker


def test_free_ports_lie_below_the_ephemeral_range_and_bind():
    low = broker._ephemeral_low()
    for _ in range(20):
        port = broker.free_port()
        assert broker.LOW_PORT <= port < low
        with socket.socket() as s:
            s.bind(("127.0.0.1", port))


def test_without_room_below_the_range_the_system_picks(monkeypatch):
    monkeypatch.setattr(broker, "_ephemeral_low", lambda: broker.LOW_PORT + 10)
    assert broker.free_port() > 0
