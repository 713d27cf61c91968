"""Fakes for tests without sockets and without sleeps: the test plays the network and the clock.

- ``FakeTransport``: what a ``ClientConnection`` writes is recorded (``frames()`` decodes it);
  ``feed()`` hands it server bytes, ``lose()`` reports the TCP connection gone.
- ``RecordingConnection``: a ``ClientConnection`` that records what it reports, in order.
- ``FakeClock``: time that passes only when the test says so; it stands in for ``perf_counter``
  and for the loop's ``call_later`` (its timers run in ``advance()``).
- ``FakeOpener`` and ``Attempt``: a ``PersistentTarget``'s openings, each ended by the test.
- ``FakeWheel``: the ping wheel's membership; the test calls ``tick()`` where the wheel would.
"""

from __future__ import annotations

import asyncio
import struct
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar, cast

from tests.servers import Peer, Request, server_frame
from wsmon.continuous.wheel import WheelMember
from wsmon.probe.module import Module
from wsmon.probe.phases import PhaseClock
from wsmon.probe.reasons import Phase
from wsmon.ws.connection import ClientConnection
from wsmon.ws.frames import FrameParser
from wsmon.ws.handshake import build_request, new_key
from wsmon.ws.url import TargetURL

__all__ = [
    "Attempt",
    "FakeClock",
    "FakeOpener",
    "FakeTimer",
    "FakeTransport",
    "FakeWheel",
    "RecordingConnection",
    "client_frames",
    "open_connection",
    "parse_request",
    "upgrade_response",
]

C = TypeVar("C", bound=ClientConnection)
Factory = Callable[[bytes, str, asyncio.AbstractEventLoop], C]


# --- the wire ---------------------------------------------------------------------------------


def client_frames(data: bytes) -> list[tuple[int, bytes]]:
    """Client frames as ``(opcode, payload)``: unmasked here, then decoded by ``wsmon.ws.frames``.

    Every frame must be masked, as clients must (RFC 6455 §5.3), and whole.
    """
    unmasked = bytearray()
    pos = 0
    while pos < len(data):
        b0, b1 = data[pos], data[pos + 1]
        assert b1 & 0x80, "a client frame must be masked"
        length, head = b1 & 0x7F, 2
        if length == 126:
            (length,), head = struct.unpack_from("!H", data, pos + 2), 4
        elif length == 127:
            (length,), head = struct.unpack_from("!Q", data, pos + 2), 10
        key = data[pos + head : pos + head + 4]
        payload = data[pos + head + 4 : pos + head + 4 + length]
        assert len(payload) == length, "a client frame was cut short"
        plain = bytes(b ^ key[i % 4] for i, b in enumerate(payload))
        unmasked += server_frame(b0 & 0x0F, plain, fin=bool(b0 & 0x80), rsv=(b0 >> 4) & 0x7)
        pos += head + 4 + length
    parser = FrameParser(max_size=1 << 30)
    parser.keep_data = True
    return parser.feed(bytes(unmasked))


def parse_request(head: bytes) -> Request:
    """An upgrade request head as a server reads it (header names lower-case)."""
    request_line, *lines = head.decode("latin-1").rstrip("\r\n").split("\r\n")
    headers = {}
    for line in lines:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return Request(target=request_line.split(" ")[1], headers=headers)


def upgrade_response(request_head: bytes) -> bytes:
    """The 101 answer a conforming server gives to ``request_head`` (computed by tests.servers)."""
    return Peer.upgrade_response(parse_request(request_head))


class FakeTransport(asyncio.Transport):
    """A transport that records what is written and reports what the test says the peer does."""

    def __init__(self, protocol: asyncio.Protocol) -> None:
        super().__init__()
        self.protocol = protocol
        self.written = bytearray()
        self.closed = False  # close(): the connection is to end once written data is out
        self.aborted = False  # abort(): dropped at once
        self.gone = False  # lose() reported connection_lost
        self._slow: tuple[FakeClock, list[float]] | None = None  # take_time()'s
        protocol.connection_made(self)

    # What the connection does to it.

    def write(self, data: bytes | bytearray | memoryview) -> None:
        if not self.is_closing():  # as asyncio's transports: nothing goes out once closing
            self.written += data
        if self._slow is not None and self._slow[1]:
            clock, takes = self._slow
            clock.advance(takes.pop())

    def take_time(self, clock: FakeClock, *seconds: float) -> None:
        """The next writes return the next of ``seconds`` later on ``clock`` (the data goes out at
        once): wsmon preempted in a send system call."""
        self._slow = (clock, list(reversed(seconds)))

    def is_closing(self) -> bool:
        return self.closed or self.aborted

    def close(self) -> None:
        self.closed = True

    def abort(self) -> None:
        self.aborted = True

    # What the test sees, and makes the peer do.

    @property
    def request(self) -> bytes:
        """The upgrade request head written, if any (ends with the blank line)."""
        end = self.written.find(b"\r\n\r\n")
        return bytes(self.written[: end + 4]) if self.written.startswith(b"GET ") and end >= 0 else b""

    def frames(self) -> list[tuple[int, bytes]]:
        """Every frame written after the request, decoded."""
        return client_frames(bytes(self.written[len(self.request) :]))

    def feed(self, data: bytes) -> None:
        """Bytes from the server arrive."""
        assert not self.gone, "the connection is gone"
        self.protocol.data_received(data)

    def lose(self, exc: Exception | None = None) -> None:
        """The TCP connection is gone (``exc``: why, None for a clean end)."""
        assert not self.gone, "connection_lost is reported once"
        self.gone = True
        self.protocol.connection_lost(exc)


class RecordingConnection(ClientConnection):
    """A ClientConnection that records what it reports, in order (what subclasses would hear)."""

    __slots__ = ("events",)

    def __init__(
        self,
        request: bytes,
        key: str,
        loop: asyncio.AbstractEventLoop,
        subprotocols: tuple[str, ...] = (),
        max_message_size: int = 1 << 20,
    ) -> None:
        super().__init__(request, key, loop, subprotocols, max_message_size)
        self.events: list[tuple[Any, ...]] = []

    def pong_received(self, payload: bytes, now: float) -> None:
        self.events.append(("pong", payload, now))

    def message_received(self, opcode: int, payload: bytes, now: float) -> None:
        self.events.append(("message", opcode, payload, now))

    def close_received(self, code: int) -> None:
        self.events.append(("close", code))

    def failed(self, exc: Exception) -> None:
        self.events.append(("failed", exc))

    def lost(self, exc: Exception | None) -> None:
        self.events.append(("lost", exc))


def open_connection(
    factory: Factory[C], loop: asyncio.AbstractEventLoop, host: str = "example.com", resource: str = "/"
) -> tuple[C, FakeTransport]:
    """A connection from ``factory`` on a FakeTransport; its upgrade request is out, unanswered."""
    key = new_key()
    conn = factory(build_request(host, resource, key, ()), key, loop)
    return conn, FakeTransport(conn)


# --- time -------------------------------------------------------------------------------------


@dataclass(eq=False)
class FakeTimer:
    """What ``call_later`` returns: runs ``callback`` when the clock reaches ``when``, unless cancelled."""

    at: float
    callback: Callable[..., object]
    args: tuple[Any, ...]
    is_cancelled: bool = False

    def cancel(self) -> None:
        self.is_cancelled = True

    def cancelled(self) -> bool:
        return self.is_cancelled

    def when(self) -> float:
        return self.at


@dataclass
class FakeClock:
    """Seconds that pass only in ``advance()``: ``clock()`` reads them, ``call_later`` waits on them."""

    now: float = 1000.0
    timers: list[FakeTimer] = field(default_factory=list)  # pending, in the order they were set

    def __call__(self) -> float:
        return self.now

    def call_later(self, delay: float, callback: Callable[..., object], *args: Any, **_: Any) -> FakeTimer:
        timer = FakeTimer(self.now + delay, callback, args)
        self.timers.append(timer)
        return timer

    @property
    def delays(self) -> list[float]:
        """Seconds from now to each pending timer, soonest first."""
        return sorted(t.at - self.now for t in self.timers if not t.is_cancelled)

    def advance(self, seconds: float) -> None:
        """Let ``seconds`` pass, running each timer that falls due at its time, soonest first.

        A timer due within a nanosecond of the end runs: adding up durations rounds.
        """
        end = self.now + seconds
        while due := [t for t in self.timers if not t.is_cancelled and t.at <= end + 1e-9]:
            timer = min(due, key=lambda t: t.at)
            self.timers.remove(timer)
            self.now = max(self.now, timer.at)
            timer.callback(*timer.args)
        self.timers = [t for t in self.timers if not t.is_cancelled]
        self.now = end


# --- a PersistentTarget's surroundings --------------------------------------------------------


class Attempt:
    """One opening by a FakeOpener, under way until the test ends it with ``succeed`` or ``fail``."""

    def __init__(
        self, url: TargetURL, module: Module, clock: PhaseClock, factory: Factory[Any], loop: asyncio.AbstractEventLoop
    ) -> None:
        self.url, self.module, self.clock = url, module, clock
        self._factory, self._loop = factory, loop
        self.outcome: asyncio.Future[ClientConnection] = loop.create_future()
        self.over: asyncio.Future[None] = loop.create_future()  # done once the opener returned, raised or was cancelled
        self.transport: FakeTransport | None = None

    def succeed(
        self, *, resolve: float = 0.0, connect: float = 0.0, tls: float = 0.0, upgrade: float = 0.0
    ) -> FakeTransport:
        """The server accepts the upgrade; the phases took these seconds (a zero one did not happen)."""
        conn, transport = open_connection(self._factory, self._loop, self.url.host_header, self.url.resource)
        transport.feed(upgrade_response(transport.request))
        for phase, seconds in (
            (Phase.RESOLVE, resolve),
            (Phase.CONNECT, connect),
            (Phase.TLS, tls),
            (Phase.UPGRADE, upgrade),
        ):
            if seconds:
                self.clock.phases[phase] = seconds
        self.transport = transport
        self.outcome.set_result(conn)
        return transport

    def fail(self, exc: Exception, phase: Phase) -> None:
        """The opening fails with ``exc`` during ``phase``."""
        self.clock.enter(phase)
        self.outcome.set_exception(exc)


class FakeOpener:
    """Stands in for ``Opening.open``: each call is an Attempt the test ends."""

    def __init__(self) -> None:
        self.attempts: list[Attempt] = []
        self._arrivals: asyncio.Queue[Attempt] = asyncio.Queue()

    async def __call__(self, url: TargetURL, module: Module, clock: PhaseClock, factory: Factory[C]) -> C:
        attempt = Attempt(url, module, clock, factory, asyncio.get_running_loop())
        self.attempts.append(attempt)
        self._arrivals.put_nowait(attempt)
        try:
            return cast(C, await attempt.outcome)
        finally:
            attempt.over.set_result(None)

    async def next(self) -> Attempt:
        """The next attempt, once the target has made it."""
        return await self._arrivals.get()


class FakeWheel:
    """The ping wheel's membership, and nothing more: tests tick members themselves."""

    def __init__(self) -> None:
        self.members: set[WheelMember] = set()

    def add(self, member: WheelMember) -> None:
        member.slot = 0
        self.members.add(member)

    def remove(self, member: WheelMember) -> None:
        member.slot = None
        self.members.discard(member)
