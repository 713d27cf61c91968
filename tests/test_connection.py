"""The WebSocket client connection (wsmon.ws.connection) on a FakeTransport: no sockets, no
sleeps. The test plays the server, byte by byte where it matters, and reads the client's frames."""

from __future__ import annotations

import asyncio
import itertools
import re
from collections.abc import Callable

import pytest

from tests.fakes import (
    FakeClock,
    FakeTransport,
    RecordingConnection,
    open_connection,
    parse_request,
    upgrade_response,
)
from tests.servers import MS, Peer, server_frame
from wsmon.errors import ConnectionClosed, HandshakeError, ProtocolError
from wsmon.ws import connection, stamps
from wsmon.ws.connection import SEND_DOUBT, ClientConnection
from wsmon.ws.frames import OP_BINARY, OP_CLOSE, OP_CONT, OP_PING, OP_PONG, OP_TEXT, TOO_LARGE, close_payload
from wsmon.ws.handshake import MAX_HEAD, Response


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> FakeClock:
    """The connection's perf_counter: receive and send times are the test's."""
    clock = FakeClock()
    monkeypatch.setattr(connection, "perf_counter", clock)
    return clock


def opened(conn: ClientConnection) -> asyncio.Future[Response]:
    """The future the opening awaits (a connection lets go of it once it settles)."""
    assert conn.opened is not None
    return conn.opened


def requested() -> tuple[RecordingConnection, FakeTransport]:
    """A connection whose upgrade request is out, unanswered."""
    return open_connection(RecordingConnection, asyncio.get_running_loop())


def upgraded(max_message_size: int = 1 << 20) -> tuple[RecordingConnection, FakeTransport]:
    """A connection the server has upgraded."""

    def factory(request: bytes, key: str, loop: asyncio.AbstractEventLoop) -> RecordingConnection:
        return RecordingConnection(request, key, loop, max_message_size=max_message_size)

    conn, transport = open_connection(factory, asyncio.get_running_loop())
    transport.feed(upgrade_response(transport.request))
    assert opened(conn).done() and conn.events == []
    return conn, transport


# --- the opening handshake ------------------------------------------------------------------


async def test_the_upgrade_request_goes_out_on_connect() -> None:
    conn, transport = requested()
    request = parse_request(transport.request)
    assert request.target == "/"
    assert (request.headers["host"], request.headers["upgrade"], request.headers["connection"]) == (
        "example.com",
        "websocket",
        "Upgrade",
    )
    assert transport.written == transport.request  # nothing else until the answer
    assert not opened(conn).done()


# Where the server's answer (a 101 head and a pong right behind it) is cut into pieces.
Cuts = Callable[[int, int], list[int]]
CUTS: dict[str, Cuts] = {
    "whole": lambda head, total: [],
    "byte by byte": lambda head, total: list(range(1, total)),
    "inside the blank line": lambda head, total: [head - 2],
    "around the blank line": lambda head, total: [head - 5, head - 3, head - 1],
    "head, then the frame": lambda head, total: [head],
    "the frame split": lambda head, total: [head + 1],
}


@pytest.mark.parametrize("cuts", CUTS.values(), ids=CUTS.keys())
async def test_the_upgrade_answer_is_understood_in_any_pieces(clock: FakeClock, cuts: Cuts) -> None:
    conn, transport = requested()
    head = upgrade_response(transport.request)
    answer = head + server_frame(OP_PONG, b"late")
    bounds = [0, *cuts(len(head), len(answer)), len(answer)]
    for start, end in itertools.pairwise(bounds):
        assert opened(conn).done() == (start >= len(head))
        transport.feed(answer[start:end])
    response = opened(conn).result()
    assert conn.response is response
    assert (response.status, response.subprotocol, response.headers["upgrade"]) == (101, None, "websocket")
    assert conn.events == [("pong", b"late", clock.now)]  # the frame behind the head is not lost


async def test_a_settled_connection_keeps_its_answer_status_alone_and_still_works(clock: FakeClock) -> None:
    conn, transport = upgraded()
    answer = conn.response
    assert answer is not None and answer.headers
    conn.settle()
    assert conn.opened is None  # the opening's future, let go of
    assert conn.response is not None
    assert (conn.response.status, conn.response.subprotocol, dict(conn.response.headers)) == (101, None, {})
    transport.feed(server_frame(OP_PONG, b"after"))
    assert conn.events == [("pong", b"after", clock.now)]
    transport.lose()  # an end after settling is still reported
    assert conn.events[-1] == ("lost", None)


def _wrong_accept(request: bytes) -> bytes:
    return Peer.upgrade_response(parse_request(request), accept="c29tZXRoaW5nIGVsc2U=")


@pytest.mark.parametrize(
    ("answer", "error", "status"),
    [
        (
            lambda request: b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n",
            "the server answered HTTP 404 instead of 101",
            404,
        ),
        (_wrong_accept, "wrong Sec-WebSocket-Accept in the 101 answer", 101),
        (lambda request: b"SSH-2.0-OpenSSH_9.6\r\n\r\n", "the server did not answer with HTTP", None),
    ],
    ids=["404", "wrong accept", "not HTTP"],
)
async def test_a_bad_upgrade_answer_fails_the_opening_and_aborts(
    answer: Callable[[bytes], bytes], error: str, status: int | None
) -> None:
    conn, transport = requested()
    transport.feed(answer(transport.request))
    with pytest.raises(HandshakeError, match=f"^{re.escape(error)}$") as caught:
        opened(conn).result()
    assert caught.value.status == status
    assert conn.events == [("failed", caught.value)]
    assert transport.aborted
    assert transport.frames() == []


async def test_an_endless_answer_head_fails_past_64_kib() -> None:
    conn, transport = requested()
    transport.feed(b"HTTP/1.1 101 Switching Protocols\r\n")
    fed = 0
    while not transport.aborted:
        line = b"X-Filler: " + b"a" * 1000 + b"\r\n"
        transport.feed(line)
        fed += len(line)
    assert MAX_HEAD - 1024 < fed <= MAX_HEAD + 1024
    with pytest.raises(HandshakeError, match=r"^the upgrade response head is larger than 64 KiB$"):
        opened(conn).result()


@pytest.mark.parametrize(
    ("exc", "error"),
    [
        (None, "the server closed the connection"),
        (
            ConnectionResetError(104, "Connection reset by peer"),
            "the server closed the connection: [Errno 104] Connection reset by peer",
        ),
    ],
    ids=["eof", "reset"],
)
async def test_the_connection_lost_before_the_answer_fails_the_opening(exc: Exception | None, error: str) -> None:
    conn, transport = requested()
    transport.lose(exc)
    with pytest.raises(ConnectionClosed, match=f"^{re.escape(error)}$"):
        opened(conn).result()
    assert conn.is_lost
    assert conn.events == [("lost", exc)]


# --- frames ---------------------------------------------------------------------------------


async def test_a_ping_is_answered_with_a_pong_of_its_payload() -> None:
    conn, transport = upgraded()
    transport.feed(server_frame(OP_PING, b"are you there?") + server_frame(OP_PING))
    assert transport.frames() == [(OP_PONG, b"are you there?"), (OP_PONG, b"")]
    assert conn.events == []  # answering pings is the connection's own business


async def test_our_ping_goes_out_masked_and_reports_its_send_time(clock: FakeClock) -> None:
    conn, transport = upgraded()
    assert conn.send_ping(b"\x00\x00\x00\x07") == clock.now
    assert transport.frames() == [(OP_PING, b"\x00\x00\x00\x07")]


@pytest.mark.parametrize(
    ("seconds", "timed"),
    [(0.0, True), (SEND_DOUBT * 0.9, True), (SEND_DOUBT * 1.1, False), (3 * MS, False)],
    ids=["instant", "under the bound", "over it", "preempted"],
)
async def test_a_ping_whose_send_took_too_long_is_not_timed(
    clock: FakeClock, monkeypatch: pytest.MonkeyPatch, seconds: float, timed: bool
) -> None:
    monkeypatch.setattr(stamps, "tally", stamps.Tally())
    conn = RecordingConnection(b"GET / HTTP/1.1\r\n\r\n", "key", asyncio.get_running_loop())
    transport = FakeTransport(conn)
    transport.take_time(clock, seconds, seconds)  # the ping's send, then the message's
    began = clock.now
    assert conn.send_ping(b"\x00\x00\x00\x01") == (began if timed else None)
    assert transport.frames() == [(OP_PING, b"\x00\x00\x00\x01")]  # it went out all the same
    assert stamps.tally.untimed_pings == (0 if timed else 1)
    assert conn.send_text("hello") == began + seconds  # a message step's send time is kept as ever


async def test_pongs_and_messages_are_reported_with_their_receive_time(clock: FakeClock) -> None:
    conn, transport = upgraded()
    sent = clock.now
    transport.feed(server_frame(OP_PONG, b"\x00\x00\x00\x01"))
    clock.advance(5 * MS)
    transport.feed(server_frame(OP_TEXT, b"not kept"))  # its payload is drained unless asked for
    conn.parser.keep_data = True
    transport.feed(server_frame(OP_BINARY, b"in ", fin=False))
    clock.advance(5 * MS)
    transport.feed(server_frame(OP_CONT, b"two parts"))
    assert conn.events == [
        ("pong", b"\x00\x00\x00\x01", sent),
        ("message", OP_TEXT, b"", sent + 5 * MS),
        ("message", OP_BINARY, b"in two parts", clock.now),
    ]


async def test_a_message_above_the_limit_is_reported_as_too_large() -> None:
    conn, transport = upgraded(max_message_size=8)
    conn.parser.keep_data = True
    transport.feed(server_frame(OP_TEXT, b"0123456789") + server_frame(OP_TEXT, b"fits"))
    assert [event[1:3] for event in conn.events] == [(TOO_LARGE, b""), (OP_TEXT, b"fits")]


@pytest.mark.parametrize(
    ("payload", "code", "echo"),
    [
        (close_payload(1000, "bye"), 1000, 1000),
        (close_payload(1001), 1001, 1001),
        (close_payload(4000, "custom"), 4000, 4000),
        (b"", 1005, 1000),  # no code: reported as 1005 (RFC 6455 §7.1.5), answered with 1000
    ],
    ids=["1000 with a reason", "1001", "4000", "no code"],
)
async def test_a_close_from_the_server_is_echoed_then_the_connection_closed(
    payload: bytes, code: int, echo: int
) -> None:
    conn, transport = upgraded()
    transport.feed(server_frame(OP_CLOSE, payload))
    assert transport.frames() == [(OP_CLOSE, close_payload(echo))]
    assert (conn.close_code, conn.events) == (code, [("close", code)])
    assert transport.closed and not transport.aborted
    transport.lose()
    assert conn.events == [("close", code), ("lost", None)]


async def test_our_close_goes_out_once_and_its_answer_is_not_echoed() -> None:
    conn, transport = upgraded()
    conn.send_close(1001)
    conn.send_close(1000)
    assert transport.frames() == [(OP_CLOSE, close_payload(1001))]
    transport.feed(server_frame(OP_CLOSE, close_payload(1001)))
    assert transport.frames() == [(OP_CLOSE, close_payload(1001))]
    assert conn.events == [("close", 1001)]
    assert transport.closed


@pytest.mark.parametrize(("closed_first", "aborted"), [(False, True), (True, False)])
async def test_abort_unless_closing_spares_a_closing_connection(closed_first: bool, aborted: bool) -> None:
    conn, transport = upgraded()
    if closed_first:
        transport.feed(server_frame(OP_CLOSE, close_payload(1000)))
    conn.abort_unless_closing()
    assert transport.aborted is aborted


MASKED_TEXT = bytes((0x80 | OP_TEXT, 0x80 | 1)) + b"\x01\x02\x03\x04" + b"x"


@pytest.mark.parametrize(
    ("data", "error"),
    [
        (MASKED_TEXT, "the server masked a frame"),
        (server_frame(OP_TEXT, b"x", rsv=0b100), "reserved bits set without a negotiated extension"),
        (server_frame(0x3, b""), "unknown opcode 0x3"),
        (server_frame(OP_PING, b"x" * 126), "control frame fragmented or longer than 125 bytes"),
        (server_frame(OP_PING, b"", fin=False), "control frame fragmented or longer than 125 bytes"),
        (server_frame(OP_CONT, b"x"), "continuation frame out of sequence"),
    ],
    ids=["masked", "reserved bits", "unknown opcode", "long ping", "fragmented ping", "stray continuation"],
)
async def test_a_protocol_error_fails_the_connection(data: bytes, error: str) -> None:
    conn, transport = upgraded()
    transport.feed(data)
    ((kind, exc),) = conn.events
    assert kind == "failed"
    assert isinstance(exc, ProtocolError) and str(exc) == error
    assert transport.aborted
    # Failed with its reason (RFC 6455 §7.1.7): a close frame with 1002, then the connection dropped.
    assert transport.frames() == [(OP_CLOSE, close_payload(1002))]


async def test_a_text_message_that_is_not_utf8_fails_the_connection_with_1007() -> None:
    conn, transport = upgraded()
    conn.parser.keep_data = True
    transport.feed(server_frame(OP_TEXT, b"caf\xc3"))
    ((kind, exc),) = conn.events
    assert kind == "failed"
    assert isinstance(exc, ProtocolError) and (str(exc), exc.code) == ("a text message is not valid UTF-8", 1007)
    assert transport.aborted
    assert transport.frames() == [(OP_CLOSE, close_payload(1007))]
