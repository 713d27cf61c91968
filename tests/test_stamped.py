"""The kernel-stamped transport (wsmon.ws.stamped) against real loopback servers, on both loops.

The servers that must answer while the test blocks its own event loop run on a loop of their
own in another thread (``threaded``): ``time.sleep`` releases the GIL, so they answer at once
and the kernel stamps the answer while the client's loop is still asleep.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import hashlib
import os
import re
import socket
import ssl
import struct
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from time import perf_counter

import pytest

from tests import servers
from tests.servers import HOST, MS, Peer, Request, Server, ServerMaker, TLSCertificates, threaded
from wsmon.errors import ConnectionClosed, ProxyError
from wsmon.ws import stamped, stamps
from wsmon.ws.connection import ClientConnection
from wsmon.ws.handshake import build_request, new_key
from wsmon.ws.proxy import parse_proxy
from wsmon.ws.stamped import StampedTransport, connect_socket
from wsmon.ws.tls import TLSOptions, client_context
from wsmon.ws.url import parse_target

BLOCK = 200 * MS  # how long the client's loop is held while the answer arrives
WAIT = 5000 * MS  # for what must happen: never the limiting factor
BIG = 8 << 20  # more than the kernel's socket buffers: writes must wait for the peer


# --- helpers ------------------------------------------------------------------------------


class Recorder(ClientConnection):
    """A WebSocket client connection that keeps what it hears."""

    __slots__ = ("lost_calls", "messages", "pongs")

    def __init__(self, port: int) -> None:
        key = new_key()
        super().__init__(build_request(f"{HOST}:{port}", "/", key, ()), key, asyncio.get_running_loop())
        self.parser.keep_data = True
        self.pongs: asyncio.Queue[tuple[bytes, float]] = asyncio.Queue()
        self.messages: asyncio.Queue[tuple[bytes, float]] = asyncio.Queue()
        self.lost_calls: list[Exception | None] = []

    def pong_received(self, payload: bytes, now: float) -> None:
        self.pongs.put_nowait((payload, now))

    def message_received(self, opcode: int, payload: bytes, now: float) -> None:
        self.messages.put_nowait((payload, now))

    def lost(self, exc: Exception | None) -> None:
        self.lost_calls.append(exc)

    async def round_trip(self, payload: bytes = b"ping") -> float:
        """A ping's round trip. A ping whose send time is in doubt (a busy test host preempted
        the send) is sent again, as a probe does."""
        for _ in range(3):
            sent = self.send_ping(payload)
            received, now = await asyncio.wait_for(self.pongs.get(), WAIT)
            assert received == payload
            if sent is not None:
                return now - sent
        raise AssertionError("three sends in a row were preempted")

    def ping(self, payload: bytes) -> float:
        """Send a ping; when it went (when the write began, if the send time is in doubt)."""
        began = perf_counter()
        sent = self.send_ping(payload)
        return began if sent is None else sent

    async def closed(self) -> Exception | None:
        """Wait for the end; what it was reported with (exactly once)."""
        await eventually(lambda: self.lost_calls)
        await asyncio.sleep(5 * MS)  # a second report would come now
        (exc,) = self.lost_calls
        return exc


class Sink(asyncio.Protocol):
    """A plain asyncio protocol (no data_received_at) recording flow control and what arrives."""

    def __init__(self) -> None:
        self.data = bytearray()
        self.paused = self.resumed = 0
        self.lost: asyncio.Future[Exception | None] = asyncio.get_running_loop().create_future()

    def data_received(self, data: bytes) -> None:
        self.data += data

    def pause_writing(self) -> None:
        self.paused += 1

    def resume_writing(self) -> None:
        self.resumed += 1

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost.set_result(exc)


def conforming(secure: bool, certificates: TLSCertificates) -> ServerMaker:
    """A maker of conforming servers: wss:// with a private CA's certificate, or ws://."""
    return functools.partial(servers.tls_server, certificates) if secure else servers.echo_server


def tls_context(certificates: TLSCertificates) -> ssl.SSLContext:
    return client_context(TLSOptions(ca_file=certificates.ca_file))


def system_trust() -> ssl.SSLContext:
    """A client context trusting the system's CAs only: the tests' private CA is not one."""
    return client_context(TLSOptions())


async def open_ws(
    server: Server,
    context: ssl.SSLContext | None = None,
    *,
    kernel_stamps: bool = True,
    proxy: Server | None = None,
) -> tuple[Recorder, StampedTransport]:
    """The steps a prober takes: connect (through ``proxy``), TLS, upgrade."""
    conn = Recorder(server.port)
    if proxy is None:
        transport = await StampedTransport.connect([(socket.AF_INET, (HOST, server.port))], kernel_stamps=kernel_stamps)
    else:
        transport = await StampedTransport.connect(
            [(socket.AF_INET, (HOST, proxy.port))],
            proxy=parse_proxy(f"http://{HOST}:{proxy.port}"),
            target=parse_target(server.url()),
            kernel_stamps=kernel_stamps,
        )
    if context is not None:
        await transport.start_tls(context, HOST)
    transport.start(conn)
    assert conn.opened is not None
    await asyncio.wait_for(conn.opened, WAIT)
    return conn, transport


async def eventually(condition: Callable[[], object]) -> None:
    """Wait until ``condition()`` holds, within WAIT."""
    async with asyncio.timeout(WAIT):
        while not condition():  # noqa: ASYNC110 - the kernel and other threads give no event to wait on
            await asyncio.sleep(1 * MS)


def hold_the_loop(send: Callable[[], float]) -> float:
    """Send (a ping, a message), then keep the event loop from running for BLOCK.

    Returns the send time. The answer comes meanwhile: the server's thread answers at once.
    """
    sent = send()
    time.sleep(BLOCK)
    return sent


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def head_of(raw: bytes) -> Request:
    request_line, *lines = raw.decode("latin-1").rstrip("\r\n").split("\r\n")
    headers = {name.strip().lower(): value.strip() for name, _, value in (line.partition(":") for line in lines)}
    return Request(target=request_line.split(" ")[1], headers=headers)


async def _tunnel(peer: Peer) -> None:
    """An HTTP CONNECT proxy: the tunnel's target is recorded as the request's target."""
    request = head_of(await peer.reader.readuntil(b"\r\n\r\n"))
    peer.server.requests.append(request)
    host, _, port = request.target.rpartition(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    await peer.send(b"HTTP/1.1 200 Connection established\r\n\r\n")

    async def pipe(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
        while data := await source.read(65536):
            sink.write(data)
            await sink.drain()
        sink.close()

    try:
        await asyncio.gather(pipe(peer.reader, writer), pipe(reader, peer.writer))
    finally:
        writer.close()


@pytest.fixture
async def proxy_server() -> AsyncIterator[Server]:
    async with servers.raw_server(_tunnel) as server:
        yield server


async def _upgrade_and_serve(peer: Peer) -> None:
    await peer.upgrade()
    await peer.serve_frames()


# --- kernel stamps: the reason this transport exists ----------------------------------------


@pytest.mark.parametrize("secure", [False, True], ids=["ws", "wss"])
async def test_what_is_read_late_keeps_its_arrival_time(secure: bool, tls_certificates: TLSCertificates) -> None:
    async with threaded(conforming(secure, tls_certificates)) as server:
        conn, transport = await open_ws(server, tls_context(tls_certificates) if secure else None)
        await conn.round_trip()  # warm: the first round trip pays for lazy set-ups on both sides
        pong = (lambda: conn.ping(b"late"), conn.pongs)
        message = (lambda: conn.send_text("late"), conn.messages)
        for send, arrivals in (pong, message):
            sent = hold_the_loop(send)  # a scrape, a GC…
            payload, arrived = await asyncio.wait_for(arrivals.get(), WAIT)
            assert payload == b"late"
            assert perf_counter() - sent >= BLOCK  # it was read after the block…
            assert arrived - sent < BLOCK / 4  # …and stamped when it came in
            assert conn.kernel_stamps and transport.kernel_stamps
        transport.abort()


@pytest.mark.parametrize("secure", [False, True], ids=["ws", "wss"])
async def test_a_hold_before_the_send_system_call_is_not_round_trip(
    secure: bool, tls_certificates: TLSCertificates, monkeypatch: pytest.MonkeyPatch
) -> None:
    """wsmon preempted between encoding a ping and sending it (a neighbour took the core): the
    wait is not the network's. The send time is read right before the send system call."""
    async with threaded(conforming(secure, tls_certificates)) as server:
        conn, transport = await open_ws(server, tls_context(tls_certificates) if secure else None)
        await conn.round_trip()
        send = StampedTransport._send

        def preempted(self: StampedTransport, data: bytes | bytearray | memoryview) -> None:
            time.sleep(BLOCK)  # as if the core were taken away on the way to the system call
            send(self, data)

        monkeypatch.setattr(StampedTransport, "_send", preempted)
        began = perf_counter()
        rtt = await conn.round_trip(b"held")
        assert perf_counter() - began >= BLOCK  # the write was held…
        assert 0 < rtt < BLOCK / 4  # …and the round trip is the wire's
        monkeypatch.undo()
        transport.abort()


@pytest.mark.parametrize("secure", [False, True], ids=["ws", "wss"])
async def test_a_hold_between_the_two_clock_reads_does_not_move_the_arrival(
    secure: bool, tls_certificates: TLSCertificates, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The stamp's age is read on the wall clock and taken off ``perf_counter``: wsmon preempted
    between reading the one and the other would move the arrival by the hold."""
    async with threaded(conforming(secure, tls_certificates)) as server:
        conn, transport = await open_ws(server, tls_context(tls_certificates) if secure else None)
        await conn.round_trip()
        holds = [BLOCK]

        def preempted() -> int:
            if holds:
                time.sleep(holds.pop())  # the core taken away right after perf_counter() was read
            return time.time_ns()

        monkeypatch.setattr(stamped, "time_ns", preempted)
        rtt = await conn.round_trip(b"held")
        assert not holds  # the hold came…
        assert 0 < rtt < BLOCK / 4  # …and the round trip is still the wire's
        transport.abort()


@pytest.mark.parametrize("secure", [False, True], ids=["ws", "wss"])
async def test_a_hold_during_the_send_leaves_the_ping_untimed(
    secure: bool, tls_certificates: TLSCertificates, monkeypatch: pytest.MonkeyPatch
) -> None:
    """wsmon preempted once the clock was read for the send: the packet may have left at any
    moment of the hold, so the ping is not timed (its pong still comes)."""
    async with threaded(conforming(secure, tls_certificates)) as server:
        conn, transport = await open_ws(server, tls_context(tls_certificates) if secure else None)
        await conn.round_trip()
        send = StampedTransport._send

        def preempted(self: StampedTransport, data: bytes | bytearray | memoryview) -> None:
            send(self, data)
            time.sleep(BLOCK)  # the core taken away as the system call returns

        monkeypatch.setattr(stamps, "tally", stamps.Tally())
        monkeypatch.setattr(StampedTransport, "_send", preempted)
        assert conn.send_ping(b"held") is None
        monkeypatch.setattr(StampedTransport, "_send", send)
        payload, _ = await asyncio.wait_for(conn.pongs.get(), WAIT)
        assert payload == b"held"
        assert stamps.tally.untimed_pings == 1
        assert 0 < await conn.round_trip(b"next") < BLOCK / 4  # the next ping, sent in time, is timed
        transport.abort()


@pytest.mark.parametrize("secure", [False, True], ids=["ws", "wss"])
async def test_without_kernel_stamps_the_read_time_is_used_and_said(
    secure: bool, tls_certificates: TLSCertificates
) -> None:
    async with threaded(conforming(secure, tls_certificates)) as server:
        conn, transport = await open_ws(server, tls_context(tls_certificates) if secure else None, kernel_stamps=False)
        await conn.round_trip()
        sent = hold_the_loop(lambda: conn.ping(b"late"))
        _, arrived = await asyncio.wait_for(conn.pongs.get(), WAIT)
        assert arrived - sent >= BLOCK  # the loop's lag counted as latency: what stamps avoid
        assert not conn.kernel_stamps
        assert transport.get_extra_info("kernel_stamps") is False
        transport.abort()


def _timespec(ns: int) -> list[tuple[int, int, bytes]]:
    assert stamps.SO_TIMESTAMPNS is not None
    return [(socket.SOL_SOCKET, stamps.SO_TIMESTAMPNS, struct.pack("@ll", *divmod(ns, 1_000_000_000)))]


WALL = 1_800_000_000 * 1_000_000_000  # a wall-clock time, ns


@pytest.mark.parametrize(
    ("ancdata", "expected"),
    [
        (_timespec(WALL - 5_000_000), 100.0 - 0.005),  # 5 ms before the read
        (_timespec(WALL), 100.0),
        ([], None),  # no stamp
        (_timespec(WALL + 1_000_000), None),  # in the future: the wall clock was stepped back
        (_timespec(WALL - stamps.MAX_AGE_NS - 1), None),  # too old to be this read's
        ([(socket.SOL_SOCKET, 29, b"\0" * 16)], None),  # another kind of ancillary data
        ([(socket.SOL_SOCKET, stamps.SO_TIMESTAMPNS or 0, b"\0" * 4)], None),  # truncated
    ],
    ids=["5ms-old", "now", "none", "future", "too-old", "other-kind", "truncated"],
)
def test_arrival_in_perf_counter_time(ancdata: list[tuple[int, int, bytes]], expected: float | None) -> None:
    got = stamps.arrival(ancdata, 100.0, WALL)
    assert got == pytest.approx(expected) if expected is not None else got is None


async def test_a_plain_protocol_gets_data_received(echo_server: Server) -> None:
    transport = await StampedTransport.connect([(socket.AF_INET, (HOST, echo_server.port))])
    sink = Sink()
    transport.start(sink)
    transport.write(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")  # not an upgrade: websockets answers 426
    await eventually(lambda: b"\r\n\r\n" in sink.data)
    assert sink.data.startswith(b"HTTP/1.1 426 ")
    transport.close()
    assert await asyncio.wait_for(sink.lost, WAIT) is None


# --- opening --------------------------------------------------------------------------------


async def test_connect_takes_the_first_address_that_accepts(echo_server: Server) -> None:
    addresses = [(socket.AF_INET, (HOST, servers.refused_port())), (socket.AF_INET, (HOST, echo_server.port))]
    sock = await connect_socket(addresses)
    with sock:
        assert sock.getpeername() == (HOST, echo_server.port)
        assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)
        assert not sock.getblocking()


async def test_connect_refused() -> None:
    with pytest.raises(ConnectionRefusedError, match=r"\[Errno 111\] Connection refused"):
        await StampedTransport.connect([(socket.AF_INET, (HOST, servers.refused_port()))])
    with pytest.raises(OSError, match="no address to connect to"):
        await StampedTransport.connect([])


async def test_tls_extra_info(tls_certificates: TLSCertificates) -> None:
    context = tls_certificates.server_context()
    context.set_alpn_protocols(["h2", "http/1.1"])
    async with servers.raw_server(_upgrade_and_serve, ssl_context=context) as server:
        conn, transport = await open_ws(server, tls_context(tls_certificates))
        sslobj = transport.get_extra_info("ssl_object")
        assert isinstance(sslobj, ssl.SSLObject)
        assert sslobj.version() in ("TLSv1.2", "TLSv1.3")
        server_pem = tls_certificates.server_cert.cert_chain_pems[0].bytes().decode()
        assert sslobj.getpeercert(binary_form=True) == ssl.PEM_cert_to_DER_cert(server_pem)
        assert sslobj.selected_alpn_protocol() == "http/1.1"  # as the client context offers
        sock = transport.get_extra_info("socket")
        assert transport.get_extra_info("peername") == (HOST, server.port) == sock.getpeername()
        assert transport.get_extra_info("sockname") == sock.getsockname()
        assert await conn.round_trip() < WAIT
        conn.send_close()
        assert await conn.closed() is None
        assert conn.close_code == 1000
        assert sock.fileno() == -1


@pytest.mark.parametrize("secure", [False, True], ids=["ws", "wss"])
async def test_through_a_connect_proxy(secure: bool, proxy_server: Server, tls_certificates: TLSCertificates) -> None:
    make = conforming(secure, tls_certificates)
    async with make() as server:
        conn, _ = await open_ws(server, tls_context(tls_certificates) if secure else None, proxy=proxy_server)
        assert await conn.round_trip() < WAIT
        assert conn.kernel_stamps
        assert [r.target for r in proxy_server.requests] == [f"{HOST}:{server.port}"]
        conn.send_close()
        assert await conn.closed() is None


async def test_a_proxy_refusing_the_tunnel() -> None:
    async def refuse(peer: Peer) -> None:
        await peer.reader.readuntil(b"\r\n\r\n")
        await peer.send(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n")

    async with servers.raw_server(refuse) as proxy:
        before = open_fds()
        with pytest.raises(ProxyError, match=re.escape("the proxy answered CONNECT with 'HTTP/1.1 403 Forbidden'")):
            await StampedTransport.connect(
                [(socket.AF_INET, (HOST, proxy.port))],
                proxy=parse_proxy(f"http://{HOST}:{proxy.port}"),
                target=parse_target("wss://example.com/"),
            )
        assert open_fds() <= before


class Drowsy(StampedTransport):
    """Dozes after each step of its TLS handshake: the server's whole flight is then one read."""

    __slots__ = ()

    def _handshake_step(self) -> None:
        super()._handshake_step()
        time.sleep(20 * MS)


async def test_data_that_came_with_the_handshake_is_delivered(tls_certificates: TLSCertificates) -> None:
    async def banner(peer: Peer) -> None:
        await peer.send(b"banner")  # right after the server's Finished
        await peer.reader.read()

    context = tls_certificates.server_context()
    context.maximum_version = ssl.TLSVersion.TLSv1_2  # in TLS 1.3 the server's Finished comes first
    async with threaded(lambda: servers.raw_server(banner, ssl_context=context)) as server:
        transport = await Drowsy.connect([(socket.AF_INET, (HOST, server.port))])
        await transport.start_tls(tls_context(tls_certificates), HOST)
        assert transport._incoming is not None and transport._incoming.pending  # the case under test
        sink = Sink()
        transport.start(sink)
        await eventually(lambda: sink.data == b"banner")
        transport.close()
        assert await asyncio.wait_for(sink.lost, WAIT) is None


async def test_pause_and_resume_reading() -> None:
    async def hello(peer: Peer) -> None:
        await peer.send(b"hello")
        await peer.reader.read()

    async with servers.raw_server(hello) as server:
        transport = await StampedTransport.connect([(socket.AF_INET, (HOST, server.port))])
        transport.pause_reading()
        sink = Sink()
        transport.start(sink)
        await asyncio.sleep(50 * MS)
        assert (bytes(sink.data), transport.is_reading()) == (b"", False)
        transport.resume_reading()
        await eventually(lambda: sink.data == b"hello")
        assert transport.is_reading()
        transport.abort()
        assert await asyncio.wait_for(sink.lost, WAIT) is None


# --- how connections end ----------------------------------------------------------------------


async def _tls_eof(peer: Peer) -> None:
    await peer.reader.read(1)  # the ClientHello has come; hang up


async def _tls_reset(peer: Peer) -> None:
    await peer.reader.read(1)
    peer.reset()


async def _not_tls(peer: Peer) -> None:
    await peer.reader.read(1)
    await peer.send(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")
    await peer.reader.read()


@pytest.mark.parametrize(
    ("handler", "error", "message"),
    [
        (_tls_eof, ConnectionResetError, "the server closed the connection during the TLS handshake"),
        (_tls_reset, ConnectionResetError, r"\[Errno 104\] Connection reset by peer"),
        (_not_tls, ssl.SSLError, r"WRONG_VERSION_NUMBER|wrong version number|record layer failure"),
    ],
    ids=["eof", "reset", "not-tls"],
)
async def test_tls_handshake_cut_short(
    handler: Callable[[Peer], Awaitable[None]], error: type[Exception], message: str
) -> None:
    async with servers.raw_server(handler) as server:
        transport = await StampedTransport.connect([(socket.AF_INET, (HOST, server.port))])
        sock = transport.get_extra_info("socket")
        with pytest.raises(error, match=message):
            await transport.start_tls(system_trust(), HOST)
        assert transport.is_closing() and sock.fileno() == -1


async def test_tls_untrusted_certificate(tls_server: Server) -> None:
    transport = await StampedTransport.connect([(socket.AF_INET, (HOST, tls_server.port))])
    with pytest.raises(ssl.SSLCertVerificationError, match="certificate verify failed"):
        await transport.start_tls(system_trust(), HOST)
    assert transport.get_extra_info("socket").fileno() == -1


async def test_tls_handshake_timeout_closes_the_socket(silent_server: Server) -> None:
    transport = await StampedTransport.connect([(socket.AF_INET, (HOST, silent_server.port))])
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(50 * MS):
            await transport.start_tls(system_trust(), HOST)
    assert transport.get_extra_info("socket").fileno() == -1


async def test_eof_before_the_upgrade_answer(tls_certificates: TLSCertificates) -> None:
    async def hang_up(peer: Peer) -> None:
        await peer.read_request()

    for context in (None, tls_certificates.server_context()):
        async with servers.raw_server(hang_up, ssl_context=context) as server:
            with pytest.raises(ConnectionClosed, match="the server closed the connection"):
                await open_ws(server, tls_context(tls_certificates) if context else None)


@pytest.mark.parametrize("secure", [False, True], ids=["ws", "wss"])
async def test_reset_after_the_upgrade(secure: bool, tls_certificates: TLSCertificates) -> None:
    async def reset(peer: Peer) -> None:
        await peer.upgrade()
        await asyncio.sleep(20 * MS)
        peer.reset()

    async with servers.raw_server(reset, ssl_context=tls_certificates.server_context() if secure else None) as server:
        conn, _ = await open_ws(server, tls_context(tls_certificates) if secure else None)
        assert isinstance(await conn.closed(), ConnectionResetError)


@pytest.mark.parametrize("secure", [False, True], ids=["ws", "wss"])
async def test_server_hangs_up_after_the_upgrade(secure: bool, tls_certificates: TLSCertificates) -> None:
    async def hang_up(peer: Peer) -> None:
        await peer.upgrade()  # then the server closes: FIN, after a TLS close_notify on wss

    async with servers.raw_server(hang_up, ssl_context=tls_certificates.server_context() if secure else None) as server:
        conn, _ = await open_ws(server, tls_context(tls_certificates) if secure else None)
        assert await conn.closed() is None
        assert conn.is_lost


# --- writing ----------------------------------------------------------------------------------


async def _digest_of_big(peer: Peer) -> None:
    """Read BIG bytes (after letting the client's writes back up), answer their SHA-256."""
    await asyncio.sleep(50 * MS)
    await peer.send(hashlib.sha256(await peer.reader.readexactly(BIG)).digest())
    await peer.reader.read()


@pytest.mark.parametrize("secure", [False, True], ids=["ws", "wss"])
async def test_large_write_waits_for_the_peer_and_arrives_whole(
    secure: bool, tls_certificates: TLSCertificates
) -> None:
    payload = os.urandom(BIG)
    context = tls_certificates.server_context() if secure else None
    async with servers.raw_server(_digest_of_big, ssl_context=context) as server:
        transport = await StampedTransport.connect([(socket.AF_INET, (HOST, server.port))])
        if secure:
            await transport.start_tls(tls_context(tls_certificates), HOST)
        sink = Sink()
        transport.start(sink)
        transport.write(payload[: BIG // 2])
        transport.write(memoryview(payload)[BIG // 2 :])
        assert sink.paused == 1 and transport.get_write_buffer_size() > 0
        await eventually(lambda: len(sink.data) >= 32)
        assert bytes(sink.data) == hashlib.sha256(payload).digest()
        assert sink.resumed == 1 and transport.get_write_buffer_size() == 0
        transport.close()
        assert await asyncio.wait_for(sink.lost, WAIT) is None


async def _count(peer: Peer) -> None:
    """Read until EOF; the byte count is recorded as a request's target."""
    await asyncio.sleep(50 * MS)
    count = 0
    with contextlib.suppress(ConnectionError):  # an abort may come as a reset
        while data := await peer.reader.read(1 << 20):
            count += len(data)
    peer.server.requests.append(Request(target=str(count), headers={}))


@pytest.mark.parametrize("secure", [False, True], ids=["ws", "wss"])
async def test_close_flushes_abort_drops(secure: bool, tls_certificates: TLSCertificates) -> None:
    context = tls_certificates.server_context() if secure else None
    # A stdlib server in a thread: uvloop's TLS server drops what it had not yet handed to its
    # reader when the client's FIN comes (seen with a blocking ssl client as well).
    async with threaded(lambda: servers.raw_server(_count, ssl_context=context)) as server:
        for ending in ("close", "abort"):
            transport = await StampedTransport.connect([(socket.AF_INET, (HOST, server.port))])
            if secure:
                await transport.start_tls(tls_context(tls_certificates), HOST)
            sink = Sink()
            transport.start(sink)
            transport.write(bytes(BIG))
            getattr(transport, ending)()
            transport.write(b"after the end")  # goes nowhere
            assert transport.is_closing()
            assert await asyncio.wait_for(sink.lost, WAIT) is None
        await eventually(lambda: len(server.requests) >= 2)
    flushed, dropped = (int(r.target) for r in server.requests)
    assert flushed == BIG
    assert dropped < BIG


# --- resources --------------------------------------------------------------------------------


async def test_no_file_descriptor_leaks(echo_server: Server, silent_server: Server, tls_server: Server) -> None:
    await (await open_ws(echo_server))[0].round_trip()  # set-ups made once per process
    await asyncio.sleep(20 * MS)
    before = open_fds()
    refused = servers.refused_port()
    for _ in range(30):
        conn, transport = await open_ws(echo_server)
        await conn.round_trip()
        conn.send_close()
        await conn.closed()
        conn, transport = await open_ws(echo_server)
        transport.abort()
        with pytest.raises(ConnectionRefusedError):
            await StampedTransport.connect([(socket.AF_INET, (HOST, refused))])
        transport = await StampedTransport.connect([(socket.AF_INET, (HOST, tls_server.port))])
        with pytest.raises(ssl.SSLCertVerificationError):
            await transport.start_tls(system_trust(), HOST)
        transport = await StampedTransport.connect([(socket.AF_INET, (HOST, silent_server.port))])
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(1 * MS):
                await transport.start_tls(system_trust(), HOST)
    await eventually(lambda: open_fds() <= before)  # the servers' ends close a moment later
