"""wsmon preempted while it sends a ping: the core taken away as the send system call returns."""

from __future__ import annotations

import time

import pytest

from wsmon.ws.stamped import StampedTransport

PING_FRAME = b"\x89"  # FIN and opcode 9: how a ping frame begins on the wire (ws://, not encrypted)


def preempt_ping_sends(monkeypatch: pytest.MonkeyPatch, *holds: float) -> None:
    """The next ``len(holds)`` ping sends of plain ws:// connections return after the
    matching number of seconds (the packet itself goes out at once)."""
    send, left = StampedTransport._send, list(reversed(holds))

    def preempted(self: StampedTransport, data: bytes | bytearray | memoryview) -> None:
        send(self, data)
        if left and bytes(data[:1]) == PING_FRAME:
            time.sleep(left.pop())

    monkeypatch.setattr(StampedTransport, "_send", preempted)
