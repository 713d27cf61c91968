"""Persistent mode: one long-lived connection per target, pinged every ``ping_interval``.

Built for thousands of connections in one process (see bench/persistent_load.py):

- no task and no timer per connection while it is up: one ``PingWheel`` (``wheel.py``) wakes
  every 5 ms and pings the connections whose slot has come, so 10,000 targets cost 200
  wake-ups a second, not 10,000;
- the send time is taken right before the write and the receive time first thing in
  ``data_received``, so a busy loop delays the ping, not the measurement;
- a lost connection comes back with capped exponential backoff and jitter, through a timer
  (``call_later``) and a short-lived task for the opening handshake only.
"""

from __future__ import annotations

import asyncio
import json
import random
from time import perf_counter
from typing import Any

import structlog

from wsmon.config.file import Target
from wsmon.continuous.store import ConnectionState, TargetState
from wsmon.continuous.wheel import PingWheel
from wsmon.probe.failures import failure_of
from wsmon.probe.jsonpath import to_number
from wsmon.probe.opening import Opening
from wsmon.probe.phases import PhaseClock
from wsmon.probe.reasons import Phase, Reason
from wsmon.ws.connection import ClientConnection
from wsmon.ws.url import parse_target

__all__ = ["PersistentTarget"]

log = structlog.get_logger("wsmon.persistent")


class _Connection(ClientConnection):
    """Hands what arrives to its PersistentTarget."""

    __slots__ = ("owner",)
    owner: PersistentTarget

    def pong_received(self, payload: bytes, now: float) -> None:
        self.owner.pong(payload, now)

    def message_received(self, opcode: int, payload: bytes, now: float) -> None:
        self.owner.message(payload)

    def close_received(self, code: int) -> None:
        self.owner.close_code = code

    def lost(self, exc: Exception | None) -> None:
        self.owner.lost(self, exc)


class PersistentTarget:
    """One target's connection, its pings and its reconnects."""

    __slots__ = (
        "_attempts",
        "_backoff",
        "_backoff_max",
        "_closed",
        "_given_up",
        "_loop",
        "_opening",
        "_openings",
        "_ping_payload",
        "_ping_sent_at",
        "_reconnect_requested",
        "_seq",
        "_stopping",
        "_timer",
        "_url",
        "close_code",
        "conn",
        "slot",
        "state",
        "target",
        "wheel",
    )

    def __init__(
        self,
        target: Target,
        state: TargetState,
        wheel: PingWheel,
        backoff: float,
        backoff_max: float,
        openings: asyncio.Semaphore,
    ) -> None:
        self.target, self.state, self.wheel = target, state, wheel
        self._openings = openings
        self._url = parse_target(target.url)
        self._backoff, self._backoff_max = backoff, backoff_max
        self._loop = asyncio.get_running_loop()
        self._attempts = 0  # failed attempts since the last connection that answered a ping
        self._timer: asyncio.TimerHandle | None = None
        self._opening: asyncio.Task[None] | None = None
        self._stopping = False
        self._closed = self._loop.create_future()  # done once stopped and disconnected
        self.conn: _Connection | None = None
        self.slot: int | None = None  # the PingWheel's
        self.close_code: int | None = None
        self._given_up = False  # this side dropped the connection (no pong in time)
        self._reconnect_requested = False  # this side dropped it to connect again at once
        self._ping_payload = b""
        self._ping_sent_at: float | None = None
        self._seq = 0

    def start(self) -> None:
        self._opening = self._loop.create_task(self._connect())

    # --- connecting -------------------------------------------------------------------------

    def _log_transition(self, old: ConnectionState, **details: Any) -> None:
        new = self.state.state
        if old != new:
            log.info("connection state", target=self.target.name, **{"from": str(old), "to": str(new)}, **details)

    def _factory(self, request: bytes, key: str, loop: asyncio.AbstractEventLoop) -> _Connection:
        module = self.target.module
        conn = _Connection(request, key, loop, module.subprotocols, module.max_message_size)
        conn.owner = self
        return conn

    async def _connect(self) -> None:
        old, self.state.state = self.state.state, ConnectionState.CONNECTING
        self._log_transition(old)
        clock = PhaseClock()
        opening = Opening(self._url, self.target.module, clock)
        try:
            async with self._openings, asyncio.timeout(self.target.timeout):
                conn = await opening.open(self._factory)
        except Exception as exc:
            reason, message = failure_of(exc, clock.phase, self.target.name)
            self.state.record_failure(reason, message)
            self.state.record_disconnected()
            self._log_transition(ConnectionState.CONNECTING, reason=str(reason), error=message)
            self._retry()
            return
        finally:
            self._opening = None
        phases = clock.phases
        self.state.record_connected(sum(phases.get(p, 0.0) for p in (Phase.CONNECT, Phase.TLS, Phase.UPGRADE)))
        self._log_transition(ConnectionState.CONNECTING, reconnects=self.state.reconnects)
        self.conn, self.close_code, self._given_up = conn, None, False
        subscribe = self.target.subscribe
        if subscribe is not None:
            conn.parser.keep_data = subscribe.extract is not None
            conn.send_text(subscribe.send)
        if self.target.module.ping:
            self.wheel.add(self)

    def _retry(self) -> None:
        if self._stopping:
            if not self._closed.done():
                self._closed.set_result(None)
            return
        # Full-range jitter over the upper half: replicas restarted together spread out.
        delay = min(self._backoff_max, self._backoff * 2**self._attempts) * random.uniform(0.5, 1.0)
        self._attempts = min(self._attempts + 1, 32)
        self._timer = self._loop.call_later(delay, self.start)

    # --- connected: what the wheel and the connection report ---------------------------------

    def tick(self) -> None:
        """The wheel says a ping is due."""
        conn = self.conn
        if conn is None:
            return
        sent_at = self._ping_sent_at
        if sent_at is not None:
            if perf_counter() - sent_at < self.target.timeout:
                return  # the last ping is still within its deadline: don't pile up pings
            message = f"no pong within {self.target.timeout:g}s"
            self.state.record_failure(Reason.PING_TIMEOUT, message)
            log.warning("ping timeout", target=self.target.name, error=message)
            self._given_up = True  # already counted: the loss that follows is no news
            conn.abort()  # a connection that stopped answering is dead: reconnect
            return
        self._seq = (self._seq + 1) & 0xFFFFFFFF
        self._ping_payload = self._seq.to_bytes(4, "big")
        self._ping_sent_at = conn.send_ping(self._ping_payload)

    def pong(self, payload: bytes, now: float) -> None:
        sent_at = self._ping_sent_at
        if sent_at is None or payload != self._ping_payload:
            return  # unsolicited, or the answer to a ping already given up on
        self._ping_sent_at = None
        self._attempts = 0  # it works: the next outage starts its backoff afresh
        self.state.record_pong(now - sent_at, now)

    def message(self, payload: bytes) -> None:
        self.state.record_message()
        subscribe = self.target.subscribe
        if subscribe is None or subscribe.extract is None or not payload:
            return
        try:
            value = to_number(subscribe.extract.find(json.loads(payload)))
        except (ValueError, RecursionError):
            return  # not JSON: counted as a message, nothing to extract
        if value is not None:
            self.state.record_value(subscribe.name, value)

    def lost(self, conn: _Connection, exc: Exception | None) -> None:
        if conn is not self.conn:
            return
        self.wheel.remove(self)
        self.conn, self._ping_sent_at = None, None
        self.state.record_disconnected()
        if self._stopping:
            self._log_transition(ConnectionState.CONNECTED, code=self.close_code)
            if not self._closed.done():
                self._closed.set_result(None)
            return
        if self._reconnect_requested:
            self._reconnect_requested = False
            self._log_transition(ConnectionState.CONNECTED, reason="reconnect requested")
            self.start()
            return
        if self._given_up:
            self._log_transition(ConnectionState.CONNECTED, reason=str(Reason.PING_TIMEOUT))
        else:
            why = (
                f"the server closed the WebSocket (code {self.close_code})"
                if self.close_code
                else (f"the connection was lost: {exc}" if exc else "the connection was closed")
            )
            self.state.record_failure(Reason.CLOSED, why)
            self._log_transition(ConnectionState.CONNECTED, reason=str(Reason.CLOSED), error=why)
        self._retry()

    def reconnect_now(self) -> None:
        """Drop the connection (if any) and connect again at once, backoff forgotten."""
        self._attempts = 0
        if self.conn is not None:
            self._reconnect_requested = True  # not a failure of the target
            self.conn.abort()  # lost() follows and connects again
        elif self._opening is None:
            if self._timer is not None:
                self._timer.cancel()
            self.start()

    # --- stopping ---------------------------------------------------------------------------

    def begin_stop(self, code: int) -> asyncio.Future[None]:
        """Close with ``code`` (1001 on shutdown, 1000 when removed); done once disconnected."""
        self._stopping = True
        if self._timer is not None:
            self._timer.cancel()
        if self._opening is not None:
            self._opening.cancel()
        if self.conn is not None:
            self.conn.send_close(code)
        elif not self._closed.done():
            self._closed.set_result(None)
        return self._closed

    def abort(self) -> None:
        """The close handshake took too long: drop the connection."""
        if self.conn is not None:
            self.conn.abort()
        if not self._closed.done():
            self._closed.set_result(None)
