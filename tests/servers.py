"""Real local test servers on 127.0.0.1 (ephemeral ports): one conforming, many hostile.

Every server is an async context manager yielding a ``Server`` (``.url(path)``, ``.port``,
``.requests``); ``conftest.py`` wraps them as fixtures. The conforming echo server is
``websockets``' own; the hostile ones are raw asyncio streams sharing one plumbing
(``raw_server`` + ``Peer``), so each of them is the few lines that make it hostile.

Every duration in the tests is a multiple of ``MS``, the tests' time unit (see its docstring);
``go_duration`` writes one for a config file or a command line.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import json
import os
import socket
import ssl
import struct
import threading
from collections.abc import AsyncIterator, Awaitable, Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path

import trustme
from websockets.asyncio.server import ServerConnection, serve
from websockets.exceptions import ConnectionClosed

__all__ = [
    "BLOCK_NUMBER_ANSWER",
    "HOST",
    "MS",
    "SNAPSHOT_SIZE",
    "Peer",
    "Request",
    "Server",
    "ServerMaker",
    "TLSCertificates",
    "abrupt_close_server",
    "bad_accept_server",
    "dribble_server",
    "echo_server",
    "go_duration",
    "make_certificates",
    "never_close_server",
    "no_ping_server",
    "raw_server",
    "refused_port",
    "server_frame",
    "silent_server",
    "snapshot_server",
    "status_server",
    "threaded",
    "tls_server",
]

MS = 0.001 * float(os.environ.get("WSMON_TESTS_TIMEOUT_FACTOR", "1"))
"""The tests' unit of time: one millisecond times ``WSMON_TESTS_TIMEOUT_FACTOR`` (default 1).

Every sleep, timeout, deadline, interval and backoff in the tests is a multiple of ``MS``, also
those written into configs and command lines (``go_duration(300 * MS)``) and what is asserted
about them, so ``WSMON_TESTS_TIMEOUT_FACTOR=3 make test`` runs the whole suite three times
slower on a slow or busy machine. Durations that are data (a duration table, a bucket bound,
a rule's ``for: 5m``) are not timing and stay literal.
"""
HOST = "127.0.0.1"
SNAPSHOT_SIZE = 4 << 20
BLOCK_NUMBER_ANSWER = {"jsonrpc": "2.0", "id": 1, "result": "0x1b4"}  # 436

_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"  # RFC 6455 §1.3
OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG = 0x1, 0x2, 0x8, 0x9, 0xA


def go_duration(seconds: float) -> str:
    """``seconds`` as a Go-style duration in whole milliseconds (``"300ms"``), as wsmon's config
    and flags, Prometheus and vmagent all take it."""
    return f"{round(seconds * 1000)}ms"


@dataclass(frozen=True, slots=True)
class Request:
    """An upgrade request as a server received it (header names lower-case)."""

    target: str
    headers: dict[str, str]


@dataclass(slots=True)
class Server:
    port: int
    secure: bool = False
    host: str = HOST
    requests: list[Request] = field(default_factory=list)  # raw servers record what they got

    def url(self, path: str = "/") -> str:
        return f"{'wss' if self.secure else 'ws'}://{self.host}:{self.port}{path}"


def _accept(key: str) -> str:
    # Computed here, not with wsmon.ws.handshake: the servers must not trust the code under test.
    return base64.b64encode(hashlib.sha1(key.encode() + _GUID).digest()).decode()


def server_frame(opcode: int, payload: bytes = b"", *, fin: bool = True, rsv: int = 0) -> bytes:
    """An unmasked frame, as a server sends it."""
    b0 = (0x80 if fin else 0) | rsv << 4 | opcode
    length = len(payload)
    if length < 126:
        return bytes((b0, length)) + payload
    if length < 65536:
        return bytes((b0, 126)) + struct.pack("!H", length) + payload
    return bytes((b0, 127)) + struct.pack("!Q", length) + payload


# --- raw-server plumbing ---------------------------------------------------------------


class Peer:
    """One accepted connection of a raw server, with the few WebSocket moves servers make."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, server: Server) -> None:
        self.reader, self.writer, self.server = reader, writer, server

    async def read_request(self) -> Request:
        head = await self.reader.readuntil(b"\r\n\r\n")
        request_line, *lines = head.decode("latin-1").rstrip("\r\n").split("\r\n")
        headers = {}
        for line in lines:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        request = Request(target=request_line.split(" ")[1], headers=headers)
        self.server.requests.append(request)
        return request

    @staticmethod
    def upgrade_response(request: Request, accept: str | None = None) -> bytes:
        accept = _accept(request.headers["sec-websocket-key"]) if accept is None else accept
        return (
            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Accept: {accept}\r\n\r\n"
        ).encode()

    async def upgrade(self, accept: str | None = None) -> None:
        request = await self.read_request()
        self.writer.write(self.upgrade_response(request, accept))
        await self.writer.drain()

    async def send(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()

    async def read_frame(self) -> tuple[int, bytes] | None:
        """The next client frame, unmasked; None at EOF."""
        try:
            b0, b1 = await self.reader.readexactly(2)
            length = b1 & 0x7F
            if length == 126:
                (length,) = struct.unpack("!H", await self.reader.readexactly(2))
            elif length == 127:
                (length,) = struct.unpack("!Q", await self.reader.readexactly(8))
            mask = await self.reader.readexactly(4) if b1 & 0x80 else b""
            payload = await self.reader.readexactly(length)
        except asyncio.IncompleteReadError:
            return None
        if mask:
            payload = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        return b0 & 0x0F, payload

    async def serve_frames(self, *, pong: bool = True, close: bool = True, echo: bool = True) -> None:
        """Play the server side of the WebSocket until the client leaves."""
        while (frame := await self.read_frame()) is not None:
            opcode, payload = frame
            if opcode == OP_PING and pong:
                await self.send(server_frame(OP_PONG, payload))
            elif opcode == OP_CLOSE and close:
                await self.send(server_frame(OP_CLOSE, payload[:2]))
                return  # the server closes the TCP connection first (RFC 6455 §7.1.1)
            elif opcode in (OP_TEXT, OP_BINARY) and echo:
                await self.send(server_frame(opcode, payload))

    def reset(self) -> None:
        """Drop the connection with a TCP RST."""
        sock = self.writer.get_extra_info("socket")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.writer.transport.abort()


Handler = Callable[[Peer], Awaitable[None]]


@contextlib.asynccontextmanager
async def raw_server(
    handler: Handler, *, ssl_context: ssl.SSLContext | None = None, port: int = 0, backlog: int = 100
) -> AsyncIterator[Server]:
    """Serve ``handler`` (on an ephemeral port unless given); on exit every connection is closed.

    ``backlog``: connections the kernel queues before they are accepted (raise it for a crowd
    connecting at once: past it, the kernel drops their SYNs and they retry a second later)."""
    tasks: set[asyncio.Task[None]] = set()
    writers: list[asyncio.StreamWriter] = []
    server_info = Server(port=0, secure=ssl_context is not None)

    async def connected(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        tasks.add(task)
        writers.append(writer)
        try:
            await handler(Peer(reader, writer, server_info))
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ssl.SSLError):
            pass  # the client hung up on us: clients may do that
        except asyncio.CancelledError:
            # Only raw_server's exit cancels these tasks; ending normally keeps asyncio's
            # stream callback from logging "Exception in callback … CancelledError".
            pass
        finally:
            writer.close()
            tasks.discard(task)

    server = await asyncio.start_server(connected, HOST, port, ssl=ssl_context, reuse_address=True, backlog=backlog)
    server_info.port = server.sockets[0].getsockname()[1]
    try:
        yield server_info
    finally:
        server.close()
        for task in list(tasks):
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for writer in writers:
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()
        await server.wait_closed()


# --- the conforming server -------------------------------------------------------------


@contextlib.asynccontextmanager
async def echo_server(*, jsonrpc: bool = False) -> AsyncIterator[Server]:
    """``websockets``' server: answers pings, echoes messages.

    With ``jsonrpc``, an ``eth_blockNumber`` request is answered with ``BLOCK_NUMBER_ANSWER``
    (other messages are still echoed).
    """

    async def handler(ws: ServerConnection) -> None:
        with contextlib.suppress(ConnectionClosed):
            async for message in ws:
                if jsonrpc and _is_block_number_request(message):
                    await ws.send(json.dumps(BLOCK_NUMBER_ANSWER))
                else:
                    await ws.send(message)

    async with serve(handler, HOST, 0, ping_interval=None, compression=None) as server:
        port = next(iter(server.sockets)).getsockname()[1]
        yield Server(port=port)


def _is_block_number_request(message: str | bytes) -> bool:
    try:
        request = json.loads(message)
    except ValueError:
        return False
    return isinstance(request, dict) and request.get("method") == "eth_blockNumber"


# --- hostile servers -------------------------------------------------------------------


async def _conforming(peer: Peer) -> None:
    await peer.upgrade()
    await peer.serve_frames()


async def _silent(peer: Peer) -> None:
    await peer.reader.read()  # accept, listen, say nothing until the client leaves


def silent_server() -> contextlib.AbstractAsyncContextManager[Server]:
    """Accepts TCP, then says nothing."""
    return raw_server(_silent)


def dribble_server(interval: float = 50 * MS) -> contextlib.AbstractAsyncContextManager[Server]:
    """Sends a valid 101 answer one byte every ``interval``, then behaves."""

    async def handler(peer: Peer) -> None:
        answer = peer.upgrade_response(await peer.read_request())
        for i in range(len(answer)):
            await peer.send(answer[i : i + 1])
            await asyncio.sleep(interval)
        await peer.serve_frames()

    return raw_server(handler)


def status_server(status: int) -> contextlib.AbstractAsyncContextManager[Server]:
    """Answers the upgrade request with a plain HTTP error such as 401, 404 or 503."""

    async def handler(peer: Peer) -> None:
        await peer.read_request()
        await peer.send(f"HTTP/1.1 {status} No\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".encode())

    return raw_server(handler)


def bad_accept_server() -> contextlib.AbstractAsyncContextManager[Server]:
    """A 101 answer with the wrong Sec-WebSocket-Accept."""

    async def handler(peer: Peer) -> None:
        await peer.upgrade(accept=_accept("not the client's key"))
        await peer.reader.read()

    return raw_server(handler)


def no_ping_server(*, echo: bool = True) -> contextlib.AbstractAsyncContextManager[Server]:
    """A valid upgrade, then never a pong (the close handshake works): connect-only nodes.

    With ``echo=False`` it does not answer messages either.
    """

    async def handler(peer: Peer) -> None:
        await peer.upgrade()
        await peer.serve_frames(pong=False, echo=echo)

    return raw_server(handler)


def never_close_server() -> contextlib.AbstractAsyncContextManager[Server]:
    """Answers pings but ignores the close frame and keeps the connection open."""

    async def handler(peer: Peer) -> None:
        await peer.upgrade()
        await peer.serve_frames(close=False)
        await peer.reader.read()

    return raw_server(handler)


def abrupt_close_server(delay: float = 20 * MS) -> contextlib.AbstractAsyncContextManager[Server]:
    """A valid upgrade, then a TCP RST ``delay`` later.

    The short delay lets the 101 answer reach the client first: a RST discards data the
    client has not read yet, which would make "up" depend on scheduling.
    """

    async def handler(peer: Peer) -> None:
        await peer.upgrade()
        await asyncio.sleep(delay)
        peer.reset()

    return raw_server(handler)


def snapshot_server(size: int = SNAPSHOT_SIZE) -> contextlib.AbstractAsyncContextManager[Server]:
    """Sends a ``size``-byte binary message right after the upgrade, then behaves."""

    async def handler(peer: Peer) -> None:
        request = await peer.read_request()
        # The snapshot follows the 101 answer in the same write, as busy servers do.
        await peer.send(peer.upgrade_response(request) + server_frame(OP_BINARY, bytes(size)))
        await peer.serve_frames()

    return raw_server(handler)


# --- TLS -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TLSCertificates:
    """A throw-away CA (not in any trust store) and a server certificate it signed."""

    ca: trustme.CA
    server_cert: trustme.LeafCert
    ca_file: str  # PEM, for TLSOptions(ca_file=…)

    def server_context(self) -> ssl.SSLContext:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self.server_cert.configure_cert(context)
        return context


def make_certificates(directory: Path) -> TLSCertificates:
    ca = trustme.CA()
    server_cert = ca.issue_cert("localhost", HOST)
    ca_file = directory / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    return TLSCertificates(ca=ca, server_cert=server_cert, ca_file=str(ca_file))


def tls_server(certificates: TLSCertificates) -> contextlib.AbstractAsyncContextManager[Server]:
    """A conforming wss:// server (pongs, echoes, closes) with a certificate of a private CA."""
    return raw_server(_conforming, ssl_context=certificates.server_context())


# --- nobody listening --------------------------------------------------------------------


def refused_port() -> int:
    """A port nothing listens on (bound then released: the kernel refuses connections to it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
    return port


# --- a server on a thread of its own ---------------------------------------------------------

ServerMaker = Callable[[], contextlib.AbstractAsyncContextManager[Server]]


@contextlib.asynccontextmanager
async def threaded(make: ServerMaker) -> AsyncIterator[Server]:
    """Run the server ``make`` gives on its own event loop in another thread: it answers while
    the test's loop is held."""
    ready: Future[tuple[Server, asyncio.AbstractEventLoop, asyncio.Event]] = Future()

    async def serve() -> None:
        stop = asyncio.Event()
        async with make() as server:
            ready.set_result((server, asyncio.get_running_loop(), stop))
            await stop.wait()

    thread = threading.Thread(target=asyncio.run, args=(serve(),))
    thread.start()
    server, loop, stop = await asyncio.wrap_future(ready)
    try:
        yield server
    finally:
        loop.call_soon_threadsafe(stop.set)
        await asyncio.to_thread(thread.join, 5000 * MS)  # this loop keeps running: it may have closing to do
