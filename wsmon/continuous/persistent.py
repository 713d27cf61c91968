"""Persistent mode: one long-lived connection per target, pinged every ``ping_interval``.

Built for thousands of connections in one process (see bench/persistent_load.py):

- no task and no timer per connection while it is up: one ``PingWheel`` (``wheel.py``) wakes
  every 5 ms and pings the connections whose slot has come, so 10,000 targets cost 200
  wake-ups a second, not 10,000;
- the send time is read right before the send system call and the receive time is the
  kernel's (``wsmon.ws.stamped``), so a busy loop delays the ping, not the measurement;
- a lost connection comes back with capped exponential backoff and jitter, through a timer
  (``call_later``) and a short-lived task for the opening handshake only.

A ``PersistentTarget`` is a state machine: ``_to()`` is the one place its ``State`` changes,
and it records the connection state the target exports (connecting, connected, disconnected)
in the target's ``TargetState``, logging "connection state" when that changes (not every
transition changes it):

    from         on                                   to           exported, logged with
    IDLE         start() or reconnect_now()           CONNECTING   connecting
    CONNECTING   opened                               CONNECTED    connected, reconnects
    CONNECTING   failed (an error or the timeout)     BACKOFF      disconnected, reason, error
    CONNECTED    closed by the peer, or lost          BACKOFF      disconnected, reason=closed, error
    CONNECTED    no pong within the timeout           BACKOFF      disconnected, reason=ping_timeout
    CONNECTED    reconnect_now()                      IDLE         disconnected, reason="reconnect requested";
                                                                   then CONNECTING at once
    CONNECTED    begin_stop(code): close frame sent   CLOSING      (still connected)
    CLOSING      gone: closed, abort() or no pong     STOPPED      disconnected, code (the peer's, or None)
    BACKOFF      the timer, or reconnect_now()        CONNECTING   connecting
    IDLE, CONNECTING, BACKOFF   begin_stop(code)      STOPPED      disconnected

reconnect_now() does nothing while CONNECTING (an attempt is under way), CLOSING or STOPPED
(stopping wins). A connection this side gives up on (no pong, a reconnect) is let go of at
once: its loss, reported later, is no news. Only a stop waits for the connection to end, so
that the peer can answer the close frame.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable
from enum import Enum
from time import perf_counter
from typing import Any, Protocol

import structlog

from wsmon.config.file import Target
from wsmon.continuous.store import ConnectionState, TargetState
from wsmon.continuous.wheel import WheelMember
from wsmon.probe.failures import failure_of
from wsmon.probe.jsonpath import extract_number
from wsmon.probe.module import Module
from wsmon.probe.opening import Opening
from wsmon.probe.phases import PhaseClock
from wsmon.probe.reasons import Phase, Reason
from wsmon.ws.connection import ClientConnection
from wsmon.ws.url import TargetURL, parse_target

__all__ = ["ConnectionFactory", "Opener", "PersistentTarget", "State", "Wheel"]

log = structlog.get_logger("wsmon.persistent")


class State(Enum):
    """Where a PersistentTarget is in its life (see the module's docstring for the transitions)."""

    IDLE = "idle"  # not started yet (or, within reconnect_now(), between two connections)
    CONNECTING = "connecting"  # the opening handshake is under way, in a task
    CONNECTED = "connected"  # open, and pinged by the wheel
    CLOSING = "closing"  # stopping: the close frame is out, the connection not gone yet
    BACKOFF = "backoff"  # waiting for a timer to connect again after a failure
    STOPPED = "stopped"  # for good: nothing under way, no connection


# What each state exports as the target's connection state.
_EXPORTED = {
    State.IDLE: ConnectionState.DISCONNECTED,
    State.CONNECTING: ConnectionState.CONNECTING,
    State.CONNECTED: ConnectionState.CONNECTED,
    State.CLOSING: ConnectionState.CONNECTED,
    State.BACKOFF: ConnectionState.DISCONNECTED,
    State.STOPPED: ConnectionState.DISCONNECTED,
}

_CONNECT_PHASES = (Phase.CONNECT, Phase.TLS, Phase.UPGRADE)  # what a connection's connect time sums


class _Connection(ClientConnection):
    """Hands what arrives to its PersistentTarget (which reads the peer's close code, if one
    came, from ``close_code`` once the connection is lost)."""

    __slots__ = ("owner",)
    owner: PersistentTarget

    def pong_received(self, payload: bytes, now: float) -> None:
        self.owner.pong(payload, now)

    def message_received(self, opcode: int, payload: bytes, now: float) -> None:
        self.owner.message(payload)

    def lost(self, exc: Exception | None) -> None:
        self.owner.lost(self, exc)


ConnectionFactory = Callable[[bytes, str, asyncio.AbstractEventLoop], _Connection]
# Opens a connection to the URL with the module's settings, timed on the clock, its connection
# object made by the factory: ``Opening.open`` unless a test fakes the network.
Opener = Callable[[TargetURL, Module, PhaseClock, ConnectionFactory], Awaitable[_Connection]]


async def _open(url: TargetURL, module: Module, clock: PhaseClock, factory: ConnectionFactory) -> _Connection:
    return await Opening(url, module, clock).open(factory)


class Wheel(Protocol):
    """What a PersistentTarget needs of the ping wheel (a ``PingWheel``): to join it, and leave."""

    def add(self, member: WheelMember) -> None: ...

    def remove(self, member: WheelMember) -> None: ...


class PersistentTarget:
    """One target's connection, its pings and its reconnects."""

    __slots__ = (
        "_attempts",
        "_backoff",
        "_backoff_max",
        "_loop",
        "_opener",
        "_openings",
        "_pending",
        "_ping_payload",
        "_ping_sent_at",
        "_seq",
        "_stopped",
        "_url",
        "conn",
        "slot",
        "state",
        "status",
        "target",
        "wheel",
    )

    def __init__(
        self,
        target: Target,
        state: TargetState,
        wheel: Wheel,
        backoff: float,
        backoff_max: float,
        openings: asyncio.Semaphore,
        *,
        opener: Opener = _open,
    ) -> None:
        self.target, self.state, self.wheel = target, state, wheel
        self._openings = openings
        self._opener = opener
        self._url = parse_target(target.url)
        self._backoff, self._backoff_max = backoff, backoff_max
        self._loop = asyncio.get_running_loop()
        self.status = State.IDLE
        self._attempts = 0  # failed attempts since the last connection that answered a ping
        # What is under way: the opening's task while CONNECTING, the reconnect timer in BACKOFF.
        self._pending: asyncio.Task[None] | asyncio.TimerHandle | None = None
        self._stopped: asyncio.Future[None] | None = None  # begin_stop()'s, done once STOPPED
        self.conn: _Connection | None = None  # while CONNECTED or CLOSING
        self.slot: int | None = None  # the PingWheel's
        self._ping_payload = b""
        # While a ping awaits its pong: when it was sent, negative when it is not to be timed (its
        # send took too long to tell when it left: ``send_ping`` said None). A sign, not a slot
        # of its own: measured, one more slot per target cost ~0.05 KB of RSS at 10,000.
        self._ping_sent_at: float | None = None
        self._seq = 0

    def _to(self, new: State, connect_seconds: float = 0.0, **details: Any) -> None:
        """Enter ``new``; record the exported connection state, and log it when that changes.

        ``connect_seconds``: how long the opening took, when ``new`` is CONNECTED.
        """
        old, self.status = self.status, new
        before, after = _EXPORTED[old], _EXPORTED[new]
        if after is not before:
            state = self.state
            if after is ConnectionState.CONNECTED:
                state.record_connected(connect_seconds)
                details["reconnects"] = state.reconnects
            elif after is ConnectionState.CONNECTING:
                state.record_connecting()
            else:
                state.record_disconnected()
            log.info("connection state", target=self.target.name, **{"from": str(before), "to": str(after)}, **details)
        if new is State.STOPPED and self._stopped is not None and not self._stopped.done():
            self._stopped.set_result(None)

    # --- connecting -------------------------------------------------------------------------

    def start(self) -> None:
        """Open the connection: from IDLE, or from BACKOFF when its timer goes off."""
        assert self.status is State.IDLE or self.status is State.BACKOFF, self.status
        self._to(State.CONNECTING)
        self._pending = self._loop.create_task(self._connect())

    def _factory(self, request: bytes, key: str, loop: asyncio.AbstractEventLoop) -> _Connection:
        module = self.target.module
        conn = _Connection(request, key, loop, module.subprotocols, module.max_message_size)
        conn.owner = self
        return conn

    async def _connect(self) -> None:
        clock = PhaseClock()
        try:
            async with self._openings, asyncio.timeout(self.target.timeout):
                conn = await self._opener(self._url, self.target.module, clock, self._factory)
        except Exception as exc:  # not a cancellation: begin_stop() has moved on to STOPPED then
            self._pending = None
            reason, message = failure_of(exc, clock.phase, self.target.name)
            self.state.record_failure(reason, message)
            self._back_off(reason=str(reason), error=message)
            return
        self._pending = None
        self.conn = conn
        conn.settle()
        self._to(State.CONNECTED, sum(clock.phases.get(p, 0.0) for p in _CONNECT_PHASES))
        subscribe = self.target.subscribe
        if subscribe is not None:
            conn.parser.keep_data = subscribe.extract is not None
            conn.send_text(subscribe.send)
        if self.target.module.ping:
            self.wheel.add(self)

    def _back_off(self, **details: Any) -> None:
        """Enter BACKOFF, to connect again once a backoff delay has passed."""
        self._to(State.BACKOFF, **details)
        # Full-range jitter over the upper half: replicas restarted together spread out.
        delay = min(self._backoff_max, self._backoff * 2**self._attempts) * random.uniform(0.5, 1.0)
        self._attempts = min(self._attempts + 1, 32)
        self._pending = self._loop.call_later(delay, self.start)

    # --- connected: what the wheel and the connection report ---------------------------------

    def tick(self) -> None:
        """The wheel says a ping is due."""
        conn = self.conn
        if conn is None:
            return
        sent_at = self._ping_sent_at
        if sent_at is not None:
            if perf_counter() - abs(sent_at) < self.target.timeout:
                return  # the last ping is still within its deadline: don't pile up pings
            message = f"no pong within {self.target.timeout:g}s"
            self.state.record_failure(Reason.PING_TIMEOUT, message)
            log.warning("ping timeout", target=self.target.name, error=message)
            # A connection that stopped answering is dead: drop it (already counted, as
            # ping_timeout) and reconnect, unless it is being stopped anyway.
            self._let_go(conn)
            if self.status is State.CLOSING:
                self._to(State.STOPPED, code=conn.close_code)
            else:
                self._back_off(reason=str(Reason.PING_TIMEOUT))
            return
        self._seq = (self._seq + 1) & 0xFFFFFFFF
        self._ping_payload = self._seq.to_bytes(4, "big")
        sent_at = conn.send_ping(self._ping_payload)
        self._ping_sent_at = -perf_counter() if sent_at is None else sent_at  # perf_counter() > 0

    def pong(self, payload: bytes, now: float) -> None:
        sent_at = self._ping_sent_at
        if sent_at is None or payload != self._ping_payload:
            return  # unsolicited, or the answer to a ping already given up on
        self._ping_sent_at = None
        self._attempts = 0  # it works: the next outage starts its backoff afresh
        if sent_at > 0:
            self.state.record_pong(now - sent_at, now)
        else:
            self.state.record_untimed_pong()

    def message(self, payload: bytes) -> None:
        self.state.record_message()
        subscribe = self.target.subscribe
        if subscribe is None or subscribe.extract is None or not payload:
            return
        value = extract_number(subscribe.extract, payload)  # None for a message that is not JSON
        if value is not None:
            self.state.record_value(subscribe.name, value)

    def lost(self, conn: _Connection, exc: Exception | None) -> None:
        """``conn`` is gone: closed by the peer or by our close handshake, or dropped."""
        if conn is not self.conn:
            return  # one this side let go of already
        self._detach()
        if self.status is State.CLOSING:
            self._to(State.STOPPED, code=conn.close_code)
            return
        code = conn.close_code
        why = (
            f"the server closed the WebSocket (code {code})"
            if code
            else (f"the connection was lost: {exc}" if exc else "the connection was closed")
        )
        self.state.record_failure(Reason.CLOSED, why)
        self._back_off(reason=str(Reason.CLOSED), error=why)

    def _detach(self) -> None:
        """Forget the connection: off the wheel, no ping awaited."""
        self.wheel.remove(self)
        self.conn, self._ping_sent_at = None, None

    def _let_go(self, conn: _Connection) -> None:
        """Forget ``conn`` first, then abort it: whenever its loss is reported, it is no news."""
        self._detach()
        conn.abort()

    def reconnect_now(self) -> None:
        """Drop the connection (if any) and connect again at once, backoff forgotten."""
        self._attempts = 0
        status = self.status
        if status is State.CONNECTED:
            assert self.conn is not None
            self._let_go(self.conn)  # not a failure of the target
            self._to(State.IDLE, reason="reconnect requested")
            self.start()
        elif status is State.BACKOFF:
            assert self._pending is not None
            self._pending.cancel()
            self.start()
        elif status is State.IDLE:
            self.start()
        # CONNECTING: on its way already. CLOSING, STOPPED: stopping wins.

    # --- stopping ---------------------------------------------------------------------------

    def begin_stop(self, code: int) -> asyncio.Future[None]:
        """Close with ``code`` (1001 on shutdown, 1000 when removed or paused) and stay closed;
        the future is done once disconnected."""
        if self._stopped is None:
            self._stopped = self._loop.create_future()
        status = self.status
        if status is State.CONNECTED:
            assert self.conn is not None
            self.conn.send_close(code)
            self._to(State.CLOSING)  # STOPPED once the connection ends
        elif status is not State.CLOSING and status is not State.STOPPED:
            if self._pending is not None:  # the opening (its connection is aborted) or the timer
                self._pending.cancel()
                self._pending = None
            self._to(State.STOPPED)
        return self._stopped

    def abort(self) -> None:
        """The close handshake begun by begin_stop() took too long: drop the connection."""
        conn = self.conn
        if self.status is State.CLOSING and conn is not None:
            self._let_go(conn)
            self._to(State.STOPPED, code=conn.close_code)
