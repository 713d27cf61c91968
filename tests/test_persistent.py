"""PersistentTarget's state machine through fakes: a FakeOpener ends each opening as the test
says, a FakeTransport carries each connection, a FakeClock stands in for perf_counter and the
loop's call_later, and the test ticks the target where the ping wheel would. No sockets, no
sleeps. Every transition of the table in wsmon.continuous.persistent, with the figures it
records and the lines it logs."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable, MutableMapping
from dataclasses import dataclass
from typing import Any

import pytest
import structlog
from structlog.testing import capture_logs

from tests.fakes import Attempt, FakeClock, FakeOpener, FakeTransport, FakeWheel
from tests.servers import MS, server_frame
from wsmon.config.file import Subscription, Target
from wsmon.continuous import persistent
from wsmon.continuous.persistent import PersistentTarget, State
from wsmon.continuous.store import ConnectionState, TargetState
from wsmon.errors import HandshakeError
from wsmon.probe.jsonpath import JsonPath
from wsmon.probe.module import BUILTIN_MODULES, Module
from wsmon.probe.reasons import Phase, Reason
from wsmon.ws import connection
from wsmon.ws.frames import OP_CLOSE, OP_PING, OP_PONG, OP_TEXT, close_payload

PING, CONNECT = BUILTIN_MODULES["ping"], BUILTIN_MODULES["connect"]
TIMEOUT = 10_000 * MS  # the pong deadline; the opening's too, which only one test lets pass
BACKOFF, BACKOFF_MAX = 100 * MS, 800 * MS
NOT_CONNECTED: dict[str, Any] = {"state": ConnectionState.DISCONNECTED, "connected_since": False, "last_ping_ok": False}

Log = MutableMapping[str, Any]


class Jitter:
    """Stands in for the random module: the jitter is the top of its range, and the range noted."""

    def __init__(self) -> None:
        self.ranges: list[tuple[float, float]] = []

    def uniform(self, low: float, high: float) -> float:
        self.ranges.append((low, high))
        return high


@dataclass
class Rig:
    """A PersistentTarget and the fakes around it."""

    target: PersistentTarget
    opener: FakeOpener
    wheel: FakeWheel
    clock: FakeClock
    jitter: Jitter
    logs: list[Log]

    @property
    def state(self) -> TargetState:
        return self.target.state

    def status(self) -> State:
        """The target's State, read anew: mypy keeps an attribute narrowed across calls that change it."""
        return self.target.status

    async def attempt(self) -> Attempt:
        return await self.opener.next()

    async def connect(self, **phases: float) -> FakeTransport:
        """The next opening succeeds (``phases``: as ``Attempt.succeed`` takes them)."""
        attempt = await self.opener.next()
        transport = attempt.succeed(**phases)
        await attempt.over
        assert self.status() is State.CONNECTED
        return transport

    async def fail(self, exc: Exception, phase: Phase = Phase.CONNECT) -> None:
        """The next opening fails."""
        attempt = await self.opener.next()
        attempt.fail(exc, phase)
        await attempt.over

    def transitions(self) -> list[dict[str, Any]]:
        """The "connection state" lines logged so far, without what every one of them carries."""
        return [
            {k: v for k, v in line.items() if k not in ("event", "log_level", "target")}
            for line in self.logs
            if line["event"] == "connection state"
        ]

    def figures(self, *names: str) -> dict[str, Any]:
        """What the TargetState recorded about the connection: these figures, or all of them."""
        state = self.state
        every = {
            "state": state.state,
            "reconnects": state.reconnects,
            "connects": state.connect_histogram.count,
            "failures": dict(state.failures),
            "last_error": None if state.last_error is None else (state.last_error.reason, state.last_error.message),
            "pings_ok": state.pings_ok,
            "last_ping_ok": state.last_ping_ok,
            "connected_since": state.connected_since is not None,
        }
        return {name: every[name] for name in names} if names else every


MakeRig = Callable[..., Rig]


@pytest.fixture
async def make_rig(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[MakeRig]:
    """Rigs on one FakeClock, stopped at the end of the test; their log lines captured."""
    loop = asyncio.get_running_loop()
    clock, jitter = FakeClock(), Jitter()
    monkeypatch.setattr(loop, "call_later", clock.call_later)
    monkeypatch.setattr(persistent, "perf_counter", clock)
    monkeypatch.setattr(connection, "perf_counter", clock)
    monkeypatch.setattr(persistent, "random", jitter)
    # A logger not yet bound: one cached by an earlier configure_logging() would not be captured.
    monkeypatch.setattr(persistent, "log", structlog.get_logger("wsmon.persistent"))
    rigs: list[Rig] = []

    def make(module: Module = PING, timeout: float = TIMEOUT, subscribe: Subscription | None = None) -> Rig:
        target = Target(
            name="node", url="ws://node.example:8546/ws", module=module, timeout=timeout, subscribe=subscribe
        )
        opener, wheel = FakeOpener(), FakeWheel()
        state = TargetState(target, window=300_000 * MS, sample_interval=1000 * MS)
        runner = PersistentTarget(target, state, wheel, BACKOFF, BACKOFF_MAX, asyncio.Semaphore(4), opener=opener)
        rig = Rig(runner, opener, wheel, clock, jitter, logs)
        rigs.append(rig)
        return rig

    # Whatever level an earlier test's configure_logging() left the loggers filtering at, this
    # test hears every line; the configuration is put back afterwards.
    saved = structlog.get_config()
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.DEBUG))
    try:
        with capture_logs() as logs:
            yield make
    finally:
        structlog.configure(**saved)
    for rig in rigs:
        rig.target.begin_stop(1001)
        rig.target.abort()
        for attempt in rig.opener.attempts:
            await attempt.over


@pytest.fixture
async def rig(make_rig: MakeRig) -> Rig:
    return make_rig()


def assert_recorded(rig: Rig, **expected: Any) -> None:
    """These figures, whatever the others are."""
    assert rig.figures(*expected) == expected


async def connected(rig: Rig) -> FakeTransport:
    rig.target.start()
    return await rig.connect(resolve=1 * MS, connect=3 * MS, upgrade=2 * MS)


def pong_for_last_ping(transport: FakeTransport) -> bytes:
    opcode, payload = transport.frames()[-1]
    assert opcode == OP_PING
    return server_frame(OP_PONG, payload)


# --- opening --------------------------------------------------------------------------------


async def test_start_connects_and_joins_the_wheel(rig: Rig) -> None:
    assert rig.status() is State.IDLE
    rig.target.start()
    assert rig.status() is State.CONNECTING
    assert rig.state.state is ConnectionState.CONNECTING
    attempt = await rig.attempt()
    assert (attempt.url.host, attempt.url.port, attempt.url.resource, attempt.module) == (
        "node.example",
        8546,
        "/ws",
        PING,
    )
    transport = attempt.succeed(resolve=1 * MS, connect=3 * MS, tls=4 * MS, upgrade=2 * MS)
    await attempt.over
    assert rig.status() is State.CONNECTED
    assert rig.wheel.members == {rig.target}
    assert rig.target.conn is transport.protocol
    assert rig.state.last_connect == pytest.approx(9 * MS)  # connect + TLS + upgrade: the lookup is not the server's
    assert rig.figures() == {
        "state": ConnectionState.CONNECTED,
        "reconnects": 0,
        "connects": 1,
        "failures": {},
        "last_error": None,
        "pings_ok": 0,
        "last_ping_ok": False,
        "connected_since": True,
    }
    assert rig.transitions() == [
        {"from": "disconnected", "to": "connecting"},
        {"from": "connecting", "to": "connected", "reconnects": 0},
    ]
    assert transport.frames() == []


@pytest.mark.parametrize(
    ("module", "subscribe", "on_wheel", "sent", "keep_data"),
    [
        (PING, None, True, [], False),
        (CONNECT, None, False, [], False),
        (PING, Subscription(send='{"method":"subscribe"}'), True, [(OP_TEXT, b'{"method":"subscribe"}')], False),
        (
            CONNECT,
            Subscription(send="sub", extract=JsonPath.parse("$.height"), name="height"),
            False,
            [(OP_TEXT, b"sub")],
            True,
        ),
    ],
    ids=["ping", "connect only", "subscribe", "subscribe and extract"],
)
async def test_what_a_new_connection_does_depends_on_the_target(
    make_rig: MakeRig,
    module: Module,
    subscribe: Subscription | None,
    on_wheel: bool,
    sent: list[tuple[int, bytes]],
    keep_data: bool,
) -> None:
    rig = make_rig(module=module, subscribe=subscribe)
    transport = await connected(rig)
    assert (rig.target in rig.wheel.members) is on_wheel
    assert transport.frames() == sent
    assert rig.target.conn is not None and rig.target.conn.parser.keep_data is keep_data


@pytest.mark.parametrize(
    ("exc", "phase", "reason", "error"),
    [
        (
            ConnectionRefusedError(111, "Connection refused"),
            Phase.CONNECT,
            Reason.REFUSED,
            "connect failed: [Errno 111] Connection refused",
        ),
        (
            HandshakeError("the server answered HTTP 503 instead of 101", 503),
            Phase.UPGRADE,
            Reason.HTTP_STATUS,
            "the server answered HTTP 503 instead of 101",
        ),
        (
            OSError("[Errno -2] Name or service not known"),
            Phase.RESOLVE,
            Reason.DNS,
            "resolve failed: [Errno -2] Name or service not known",
        ),
    ],
    ids=["refused", "http status", "dns"],
)
async def test_a_failed_opening_backs_off_then_tries_again(
    rig: Rig, exc: Exception, phase: Phase, reason: Reason, error: str
) -> None:
    rig.target.start()
    await rig.fail(exc, phase)
    assert rig.status() is State.BACKOFF
    assert_recorded(rig, **NOT_CONNECTED, failures={reason: 1}, last_error=(reason, error))
    assert rig.transitions()[-1] == {"from": "connecting", "to": "disconnected", "reason": str(reason), "error": error}
    assert rig.clock.delays == [pytest.approx(BACKOFF)]
    assert rig.jitter.ranges == [(0.5, 1.0)]  # the delay is drawn from its upper half
    rig.clock.advance(BACKOFF - 1 * MS)
    assert rig.status() is State.BACKOFF
    rig.clock.advance(1 * MS)
    assert rig.status() is State.CONNECTING
    await rig.connect()
    assert_recorded(rig, reconnects=0)  # never connected before: not a reconnect


async def test_an_opening_past_its_deadline_fails_as_a_timeout_in_its_phase(make_rig: MakeRig) -> None:
    rig = make_rig(timeout=0 * MS)  # due at once: the deadline passes while the upgrade is awaited
    rig.target.start()
    attempt = await rig.attempt()
    attempt.clock.enter(Phase.UPGRADE)
    await attempt.over
    assert attempt.outcome.cancelled()
    assert rig.status() is State.BACKOFF
    assert_recorded(rig, last_error=(Reason.TIMEOUT, "timed out during upgrade"))


async def test_backoff_doubles_up_to_its_cap_and_starts_afresh_after_a_pong(rig: Rig) -> None:
    rig.target.start()
    delays = []
    for _ in range(6):
        await rig.fail(ConnectionRefusedError(111, "Connection refused"))
        (delay,) = rig.clock.delays
        delays.append(delay)
        rig.clock.advance(delay)
    assert delays == pytest.approx([BACKOFF, 2 * BACKOFF, 4 * BACKOFF, BACKOFF_MAX, BACKOFF_MAX, BACKOFF_MAX])
    transport = await rig.connect()
    transport.feed(server_frame(OP_CLOSE, close_payload(1012)))
    transport.lose()
    assert rig.clock.delays == [pytest.approx(BACKOFF_MAX)]  # connected, but no pong yet: still backing off
    rig.clock.advance(BACKOFF_MAX)
    transport = await rig.connect()
    rig.target.tick()
    transport.feed(pong_for_last_ping(transport))
    transport.lose(ConnectionResetError(104, "Connection reset by peer"))
    assert rig.clock.delays == [pytest.approx(BACKOFF)]


# --- connected ------------------------------------------------------------------------------


async def test_a_ping_is_timed_by_its_pong(rig: Rig) -> None:
    transport = await connected(rig)
    rig.target.tick()
    assert transport.frames() == [(OP_PING, b"\x00\x00\x00\x01")]
    rig.clock.advance(3 * MS)
    rig.target.tick()  # the ping is still within its deadline: no second one
    transport.feed(server_frame(OP_PONG, b"\x00\x00\x00\x00"))  # not ours: ignored
    assert (rig.state.pings_ok, rig.state.last_rtt) == (0, None)
    transport.feed(server_frame(OP_PONG, b"\x00\x00\x00\x01"))
    assert rig.state.last_rtt == pytest.approx(3 * MS)
    assert (rig.state.pings_ok, rig.state.last_ping_ok, rig.state.ping_histogram.count) == (1, True, 1)
    rig.target.tick()
    assert transport.frames()[-1] == (OP_PING, b"\x00\x00\x00\x02")


async def test_the_pong_to_a_ping_sent_late_counts_but_is_not_timed(rig: Rig) -> None:
    """wsmon preempted while sending: the pong proves the connection, its round trip is unknown."""
    transport = await connected(rig)
    transport.take_time(rig.clock, 2 * MS)  # the send system call returned this much after the clock was read
    rig.target.tick()
    transport.feed(pong_for_last_ping(transport))
    assert (rig.state.pings_ok, rig.state.last_ping_ok, rig.state.last_rtt) == (1, True, None)
    assert (rig.state.ping_histogram.count, rig.state.window.samples(rig.clock.now)) == (0, [])
    rig.target.tick()  # the next ping is sent in time: timed as ever
    rig.clock.advance(3 * MS)
    transport.feed(pong_for_last_ping(transport))
    assert rig.state.last_rtt == pytest.approx(3 * MS)
    assert (rig.state.pings_ok, rig.state.ping_histogram.count) == (2, 1)
    assert rig.state.window.samples(rig.clock.now) == [pytest.approx(3 * MS)]


async def test_a_ping_sent_late_and_never_answered_times_out_like_any_other(rig: Rig) -> None:
    """Untimed or not, a ping's deadline runs from its send (for an untimed one, from when the
    send returned)."""
    transport = await connected(rig)
    transport.take_time(rig.clock, 2 * MS)  # the send system call returned this much after the clock was read
    rig.target.tick()
    rig.clock.advance(TIMEOUT - 1 * MS)
    rig.target.tick()
    assert (rig.status(), len(transport.frames())) == (State.CONNECTED, 1)  # no second ping either
    rig.clock.advance(1 * MS)
    rig.target.tick()
    assert rig.status() is State.BACKOFF
    assert_recorded(rig, failures={Reason.PING_TIMEOUT: 1})


async def test_no_pong_in_time_drops_the_connection_and_backs_off(rig: Rig) -> None:
    transport = await connected(rig)
    rig.target.tick()
    rig.clock.advance(TIMEOUT - 1 * MS)
    rig.target.tick()
    assert rig.status() is State.CONNECTED
    rig.clock.advance(1 * MS)
    rig.target.tick()
    message = f"no pong within {TIMEOUT:g}s"
    assert rig.status() is State.BACKOFF
    assert transport.aborted
    assert rig.wheel.members == set()
    assert_recorded(rig, **NOT_CONNECTED, failures={Reason.PING_TIMEOUT: 1}, last_error=(Reason.PING_TIMEOUT, message))
    assert [line for line in rig.logs if line["event"] == "ping timeout"] == [
        {"event": "ping timeout", "log_level": "warning", "target": "node", "error": message}
    ]
    assert rig.transitions()[-1] == {"from": "connected", "to": "disconnected", "reason": "ping_timeout"}
    transport.lose()  # the aborted connection's end: no news, counted already
    assert_recorded(rig, failures={Reason.PING_TIMEOUT: 1})
    assert len(rig.transitions()) == 3
    rig.clock.advance(BACKOFF)
    await rig.connect()
    assert_recorded(rig, reconnects=1)
    assert rig.transitions()[-1] == {"from": "connecting", "to": "connected", "reconnects": 1}


@pytest.mark.parametrize(
    ("close", "exc", "error"),
    [
        (close_payload(1012, "restarting"), None, "the server closed the WebSocket (code 1012)"),
        (b"", None, "the server closed the WebSocket (code 1005)"),
        (
            None,
            ConnectionResetError(104, "Connection reset by peer"),
            "the connection was lost: [Errno 104] Connection reset by peer",
        ),
        (None, None, "the connection was closed"),
    ],
    ids=["close 1012", "close without a code", "reset", "eof"],
)
async def test_a_connection_the_server_ends_backs_off(
    rig: Rig, close: bytes | None, exc: Exception | None, error: str
) -> None:
    transport = await connected(rig)
    if close is not None:
        transport.feed(server_frame(OP_CLOSE, close))
        assert transport.closed
        assert rig.status() is State.CONNECTED  # until the TCP connection ends
    transport.lose(exc)
    assert rig.status() is State.BACKOFF
    assert rig.wheel.members == set()
    assert_recorded(rig, **NOT_CONNECTED, failures={Reason.CLOSED: 1}, last_error=(Reason.CLOSED, error))
    assert rig.transitions()[-1] == {"from": "connected", "to": "disconnected", "reason": "closed", "error": error}
    assert rig.clock.delays == [pytest.approx(BACKOFF)]


async def test_messages_are_counted(rig: Rig) -> None:
    transport = await connected(rig)
    transport.feed(server_frame(OP_TEXT, b'{"height": 1}') * 3)
    assert rig.state.messages == 3


# --- reconnect_now --------------------------------------------------------------------------


async def test_reconnect_now_while_connected_drops_it_and_connects_at_once(rig: Rig) -> None:
    transport = await connected(rig)
    rig.target.tick()  # a ping outstanding: forgotten with its connection
    rig.target.reconnect_now()
    assert transport.aborted
    assert rig.status() is State.CONNECTING
    assert rig.wheel.members == set()
    assert rig.clock.delays == []
    transport.lose()  # no news
    new = await rig.connect()
    assert new is not transport
    assert_recorded(rig, failures={}, last_error=None, reconnects=1, connects=2)
    assert rig.transitions()[-3:] == [
        {"from": "connected", "to": "disconnected", "reason": "reconnect requested"},
        {"from": "disconnected", "to": "connecting"},
        {"from": "connecting", "to": "connected", "reconnects": 1},
    ]
    rig.target.tick()
    assert new.frames() == [(OP_PING, b"\x00\x00\x00\x02")]


async def test_reconnect_now_while_waiting_skips_the_backoff(rig: Rig) -> None:
    rig.target.start()
    for _ in range(3):
        await rig.fail(ConnectionRefusedError(111, "Connection refused"))
        rig.clock.advance(rig.clock.delays[0])
    await rig.fail(ConnectionRefusedError(111, "Connection refused"))
    assert rig.clock.delays == [pytest.approx(8 * BACKOFF)]
    rig.target.reconnect_now()
    assert rig.status() is State.CONNECTING
    assert rig.clock.delays == []  # the timer is cancelled
    assert rig.transitions()[-1] == {"from": "disconnected", "to": "connecting"}
    await rig.fail(ConnectionRefusedError(111, "Connection refused"))
    assert rig.clock.delays == [pytest.approx(BACKOFF)]  # and the backoff forgotten
    assert len(rig.opener.attempts) == 5


async def test_reconnect_now_while_connecting_changes_nothing(rig: Rig) -> None:
    rig.target.start()
    attempt = await rig.attempt()
    rig.target.reconnect_now()
    assert rig.status() is State.CONNECTING
    attempt.succeed()
    await attempt.over
    assert rig.status() is State.CONNECTED
    assert len(rig.opener.attempts) == 1


# --- stopping -------------------------------------------------------------------------------


@pytest.mark.parametrize("code", [1001, 1000])
async def test_begin_stop_while_connected_closes_with_its_code(rig: Rig, code: int) -> None:
    transport = await connected(rig)
    stopped = rig.target.begin_stop(code)
    assert transport.frames() == [(OP_CLOSE, close_payload(code))]
    assert rig.status() is State.CLOSING
    assert rig.state.state is ConnectionState.CONNECTED  # until the connection ends
    assert not stopped.done()
    assert rig.target.begin_stop(code) is stopped
    assert transport.frames() == [(OP_CLOSE, close_payload(code))]  # once
    transport.feed(server_frame(OP_CLOSE, close_payload(code)))
    transport.lose()
    assert stopped.done()
    assert rig.status() is State.STOPPED
    assert_recorded(rig, **NOT_CONNECTED, failures={})
    assert rig.transitions()[-1] == {"from": "connected", "to": "disconnected", "code": code}
    assert rig.clock.delays == []


async def test_begin_stop_while_opening_cancels_it(rig: Rig) -> None:
    rig.target.start()
    attempt = await rig.attempt()
    stopped = rig.target.begin_stop(1001)
    assert stopped.done()
    assert rig.status() is State.STOPPED
    await attempt.over
    assert attempt.outcome.cancelled()
    assert_recorded(rig, **NOT_CONNECTED, failures={}, connects=0)
    assert rig.transitions() == [
        {"from": "disconnected", "to": "connecting"},
        {"from": "connecting", "to": "disconnected"},
    ]


async def test_begin_stop_while_waiting_cancels_the_timer(rig: Rig) -> None:
    rig.target.start()
    await rig.fail(ConnectionRefusedError(111, "Connection refused"))
    lines = len(rig.logs)
    stopped = rig.target.begin_stop(1000)
    assert stopped.done()
    assert rig.status() is State.STOPPED
    assert rig.clock.delays == []
    rig.clock.advance(BACKOFF_MAX)
    assert len(rig.opener.attempts) == 1
    assert len(rig.logs) == lines  # disconnected it was, disconnected it stays


async def test_begin_stop_before_start(rig: Rig) -> None:
    assert rig.target.begin_stop(1001).done()
    assert rig.status() is State.STOPPED
    assert rig.transitions() == []


async def test_abort_drops_a_connection_whose_peer_does_not_answer_the_close(rig: Rig) -> None:
    transport = await connected(rig)
    stopped = rig.target.begin_stop(1001)
    rig.target.abort()
    assert transport.aborted
    assert stopped.done()
    assert rig.status() is State.STOPPED
    assert rig.transitions()[-1] == {"from": "connected", "to": "disconnected", "code": None}
    transport.lose()  # no news
    assert len(rig.transitions()) == 3


async def test_a_stopped_target_stays_stopped(rig: Rig) -> None:
    """What pausing does: close with 1000, then nothing brings the connection back."""
    transport = await connected(rig)
    rig.target.tick()
    stopped = rig.target.begin_stop(1000)
    rig.target.reconnect_now()  # stopping wins
    assert rig.status() is State.CLOSING
    rig.clock.advance(TIMEOUT)
    rig.target.tick()  # neither the pong nor the close came: the connection is dropped, not replaced
    assert transport.aborted
    assert stopped.done()
    assert rig.status() is State.STOPPED
    assert_recorded(rig, failures={Reason.PING_TIMEOUT: 1})
    assert rig.transitions()[-1] == {"from": "connected", "to": "disconnected", "code": None}
    rig.target.reconnect_now()
    rig.target.tick()
    rig.clock.advance(BACKOFF_MAX)
    assert rig.status() is State.STOPPED
    assert len(rig.opener.attempts) == 1
    assert rig.clock.delays == []
