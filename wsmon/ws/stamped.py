"""A transport that reads its socket itself, so every read carries the kernel's arrival time.

Why not asyncio's or uvloop's transports: they read with ``recv``, which throws away the
ancillary data that holds the kernel's receive timestamp (``stamps.py``). This one owns the
socket: ``recvmsg`` when it is readable (``readers.py``: one epoll for all of them), ``send``
straight away with a buffer and ``add_writer`` when the kernel's is full, TLS with
``SSLObject`` over two ``MemoryBIO`` on the same socket. Each read is handed to the protocol
as ``data_received_at(data, when)``, ``when`` being the kernel's arrival time on the
``perf_counter`` clock (the read time where the kernel gave none; ``kernel_stamps`` says
which). Protocols without ``data_received_at`` get plain ``data_received(data)``.

Opening one has a step per phase, so each can be timed::

    transport = await StampedTransport.connect(addresses)  # TCP (+ proxy CONNECT)
    await transport.start_tls(context, server_hostname)     # wss:// only
    transport.start(protocol)                               # connection_made, then reads

Until ``start`` nothing is read (the kernel keeps what arrives) and an error raises from the
step it happened in; after it, the protocol hears of the end once, through ``connection_lost``.
``connect`` takes addresses already resolved: no ``getaddrinfo`` (uvloop's ``sock_connect``
resolves again in its thread pool, which cost ~40% of a probe's CPU here).
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import os
import socket
import ssl
import threading
from collections.abc import Callable, Iterable
from operator import attrgetter, methodcaller
from time import perf_counter, time_ns
from typing import Any

from wsmon.ws import stamps
from wsmon.ws.proxy import Proxy, proxy_connect
from wsmon.ws.readers import readers
from wsmon.ws.url import TargetURL

__all__ = ["StampedTransport", "connect_socket"]

_READ_SIZE = 256 * 1024  # as uvloop: a 4 MiB snapshot takes 16 reads
_RECORD_SIZE = 64 * 1024  # more than a TLS record's 16 KiB: one SSLObject.read gets a whole one
_HIGH_WATER = 64 * 1024  # asyncio's defaults
_LOW_WATER = 16 * 1024
_ANCILLARY = stamps.ANCILLARY_SIZE
_arrival = stamps.arrival
# Seconds between reading ``perf_counter`` and the wall clock beyond which wsmon was preempted
# in between (the two reads take ~0.1 µs): they are read again.
_PAIR_DOUBT = 0.000_02
_TLS_WAIT = (ssl.SSLWantReadError, ssl.SSLWantWriteError)
_TLS_EOF = (ssl.SSLZeroReturnError, ssl.SSLEOFError)

# What hands a read to the protocol (it, the data, the arrival time): its class's
# ``data_received_at``, or for a plain asyncio protocol ``_untimed``. Functions of the class, not
# bound methods: one kept per connection would be 64 bytes, 640 KB over 10,000.
Deliver = Callable[[Any, bytes, float], None]


def _untimed(protocol: Any, data: bytes, when: float) -> None:
    protocol.data_received(data)


async def connect_socket(addresses: Iterable[tuple[int, Any]]) -> socket.socket:
    """A non-blocking TCP socket (TCP_NODELAY) connected to the first of ``addresses`` that accepts.

    ``addresses`` are ``(family, sockaddr)`` pairs with IP literals, as ``getaddrinfo`` gives
    them. Raises the last address's error (``ConnectionRefusedError``…) if none accepts.
    """
    return await _connect_first(asyncio.get_running_loop(), addresses)


async def _connect_first(loop: asyncio.AbstractEventLoop, addresses: Iterable[tuple[int, Any]]) -> socket.socket:
    last: OSError | None = None
    for family, sockaddr in addresses:
        try:
            return await _connect_one(loop, family, sockaddr)
        except OSError as exc:
            last = exc
    if last is None:
        raise OSError(errno.EDESTADDRREQ, "no address to connect to")
    raise last


async def _connect_one(loop: asyncio.AbstractEventLoop, family: int, sockaddr: Any) -> socket.socket:
    sock = socket.socket(family, socket.SOCK_STREAM | socket.SOCK_NONBLOCK)  # no ioctl to unblock it
    try:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        err = sock.connect_ex(sockaddr)
        if err in (errno.EINPROGRESS, errno.EINTR, errno.EAGAIN):
            try:
                # On loopback the handshake is over when connect returns; a peer name says so
                # (a connection still opening has none), and saves registering with the poller.
                sock.getpeername()
                err = 0
            except OSError:
                await _writable(loop, sock.fileno())
                err = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
        if err:
            raise OSError(err, os.strerror(err))  # OSError(errno) is the matching subclass
    except BaseException:
        sock.close()
        raise
    return sock


async def _writable(loop: asyncio.AbstractEventLoop, fd: int) -> None:
    """Wait until ``fd`` is writable: a non-blocking connect has completed, or failed."""
    waiter: asyncio.Future[None] = loop.create_future()

    def ready() -> None:
        if not waiter.done():
            waiter.set_result(None)

    loop.add_writer(fd, ready)
    try:
        await waiter
    finally:
        loop.remove_writer(fd)


# What get_extra_info tells of a TLS connection, read from its SSLObject when asked.
_TLS_INFO: dict[str, Callable[[ssl.SSLObject], Any]] = {
    "ssl_object": lambda sslobj: sslobj,
    "sslcontext": attrgetter("context"),
    "peercert": methodcaller("getpeercert"),
    "cipher": methodcaller("cipher"),
    "compression": methodcaller("compression"),
}


class StampedTransport(asyncio.Transport):
    """A TCP (optionally TLS) transport stamping each read with the kernel's arrival time."""

    # Slots: a monitor holds thousands of these for days.
    __slots__ = (
        "_buffers",
        "_closing",
        "_deliver",
        "_eof",
        "_fd",
        "_handshake",
        "_high_water",
        "_incoming",
        "_info",
        "_last_when",
        "_loop",
        "_lost",
        "_low_water",
        "_outgoing",
        "_pending",
        "_pending_size",
        "_protocol",
        "_reading",
        "_reading_paused",
        "_sock",
        "_ssl",
        "_stamping",
        "_started",
        "_tls_ready",
        "_wbuf",
        "_writing",
        "_writing_paused",
        "kernel_stamps",
        "sent_at",
    )

    def __init__(self, loop: asyncio.AbstractEventLoop, sock: socket.socket, *, kernel_stamps: bool = True) -> None:
        """Take over ``sock``, a connected stream socket (it is closed with the transport).

        ``kernel_stamps=False`` does not ask for stamps: every read is timed when read.
        """
        # Not asyncio.BaseTransport.__init__: it only makes the ``_extra`` dict, which
        # get_extra_info here never reads (64 bytes a connection).
        self._extra = None
        self._info: dict[str, Any] | None = None  # the addresses, once asked for: two syscalls saved
        if sock.getblocking():  # a socket from connect_socket is not: no ioctl then
            sock.setblocking(False)
        self._loop = loop
        self._sock = sock
        self._fd = sock.fileno()
        self._buffers = _read_buffers()
        self._stamping = kernel_stamps and stamps.enable(sock)
        # Whether the latest read's time came from the kernel (before any read: whether asked).
        self.kernel_stamps = self._stamping
        self._protocol: asyncio.BaseProtocol | None = None
        self._deliver: Deliver | None = None
        self._started = False  # connection_made was called: connection_lost will be
        self._reading = False  # registered with the loop's readers
        self._reading_paused = False
        self._writing = False  # registered with add_writer
        self._writing_paused = False  # the protocol was told pause_writing()
        self._closing = False
        self._lost = False  # the end is done or scheduled
        self._eof = False  # the peer shut its side down
        self._wbuf: bytearray | None = None  # what the kernel did not take yet; made when needed
        # perf_counter read right before the latest send system call: a ping's send time. Read
        # any earlier (before encoding, encrypting, the write's checks), a preemption in between
        # would count as round trip; on a loaded host that was measured at up to 5 ms a ping.
        self.sent_at = 0.0
        self._high_water, self._low_water = _HIGH_WATER, _LOW_WATER
        self._last_when = 0.0
        # TLS, once start_tls has run.
        self._ssl: ssl.SSLObject | None = None
        self._incoming: ssl.MemoryBIO | None = None
        self._outgoing: ssl.MemoryBIO | None = None
        self._handshake: asyncio.Future[None] | None = None
        self._tls_ready = False
        self._pending: list[bytes] | None = None  # plaintext waiting for the TLS handshake (or a renegotiation)
        self._pending_size = 0

    # --- opening --------------------------------------------------------------------------

    @classmethod
    async def connect(
        cls,
        addresses: Iterable[tuple[int, Any]],
        *,
        proxy: Proxy | None = None,
        target: TargetURL | None = None,
        kernel_stamps: bool = True,
    ) -> StampedTransport:
        """Connect to the first of ``addresses`` that accepts (the proxy's, with ``proxy``).

        With ``proxy``, also ask it for a tunnel to ``target`` (HTTP CONNECT): the transport
        returned then talks to the target. On any failure the socket is closed.
        """
        if proxy is not None and target is None:
            raise ValueError("a proxy needs the target to tunnel to")
        loop = asyncio.get_running_loop()  # once: on Python 3.11 each call is a getpid() syscall
        sock = await _connect_first(loop, addresses)
        try:
            transport = cls(loop, sock, kernel_stamps=kernel_stamps)
        except BaseException:
            sock.close()
            raise
        if proxy is not None:
            assert target is not None
            try:
                await proxy_connect(loop, sock, target, proxy)
            except BaseException:
                transport.abort()
                raise
        return transport

    async def start_tls(self, context: ssl.SSLContext, server_hostname: str | None = None) -> None:
        """Do the TLS handshake (as the context says: verification, ALPN…); raise if it fails.

        Raises ``ssl.SSLError`` (``SSLCertVerificationError``…), ``ConnectionResetError`` if
        the peer hangs up or resets, or whatever cancels it; the transport is then closed.
        """
        if self._ssl is not None or self._started or self._closing:
            raise RuntimeError("start_tls() is for a fresh transport, once")
        incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
        self._incoming, self._outgoing = incoming, outgoing
        self._ssl = context.wrap_bio(incoming, outgoing, server_side=False, server_hostname=server_hostname)
        waiter = self._handshake = self._loop.create_future()
        try:
            self._handshake_step()
            if not waiter.done():
                self._start_reading()
            await waiter
        except BaseException:
            self.abort()
            raise
        finally:
            self._handshake = None
            self._stop_reading()  # until start(): what arrives meanwhile waits in the kernel
        self._tls_ready = True

    def start(self, protocol: asyncio.BaseProtocol) -> None:
        """Hand the connection to ``protocol``: ``connection_made(self)``, then reading starts."""
        if self._started:
            raise RuntimeError("the transport has a protocol already")
        if self._lost:
            raise ConnectionResetError("the connection is closed")
        self._started = True
        self.set_protocol(protocol)
        protocol.connection_made(self)
        if self._pending:
            self._flush_pending()
        if self._closing:
            return
        if not self._reading_paused:
            self._start_reading()
        if self._incoming is not None and self._incoming.pending:
            # Came with the handshake's last read; there may be nothing more to wake the reader.
            self._loop.call_soon(self._decrypt, self._last_when)

    # --- asyncio.Transport ------------------------------------------------------------------

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        # The TLS figures are read from the SSLObject when asked, not kept: a peer certificate
        # alone is ~1 KB, and 10,000 persistent connections ask for none of it once open.
        if name == "kernel_stamps":
            return self.kernel_stamps
        if name == "socket":
            return self._sock
        if name in ("peername", "sockname"):
            return self._address(name, default)
        figure = _TLS_INFO.get(name)
        if figure is None or self._ssl is None or not self._tls_ready:
            return default
        return figure(self._ssl)

    def _address(self, name: str, default: Any) -> Any:
        info = self._info
        if info is None:
            info = self._info = {}
        if name not in info:
            try:
                info[name] = self._sock.getpeername() if name == "peername" else self._sock.getsockname()
            except OSError:  # closed by now
                return default
        return info[name]

    def set_protocol(self, protocol: asyncio.BaseProtocol) -> None:
        self._protocol = protocol
        stamped = getattr(type(protocol), "data_received_at", None)
        if stamped is not None:
            self._deliver = stamped
        else:
            self._deliver = None if getattr(protocol, "data_received", None) is None else _untimed

    def get_protocol(self) -> asyncio.BaseProtocol:
        assert self._protocol is not None
        return self._protocol

    def is_closing(self) -> bool:
        return self._closing

    def is_reading(self) -> bool:
        return self._reading

    def pause_reading(self) -> None:
        self._reading_paused = True
        self._stop_reading()

    def resume_reading(self) -> None:
        if not self._reading_paused:
            return
        self._reading_paused = False
        if self._started and not self._closing:
            self._start_reading()
            if self._incoming is not None and self._incoming.pending:
                self._loop.call_soon(self._decrypt, self._last_when)

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        if high is None:
            high = _HIGH_WATER if low is None else 4 * low
        if low is None:
            low = high // 4
        if not high >= low >= 0:
            raise ValueError(f"high ({high!r}) must be >= low ({low!r}) must be >= 0")
        self._high_water, self._low_water = high, low
        self._maybe_pause_protocol()

    def get_write_buffer_limits(self) -> tuple[int, int]:
        return self._low_water, self._high_water

    def get_write_buffer_size(self) -> int:
        return (len(self._wbuf) if self._wbuf else 0) + self._pending_size

    def can_write_eof(self) -> bool:
        return False  # a WebSocket client never half-closes; TLS cannot

    def write_eof(self) -> None:
        raise NotImplementedError("a stamped transport does not half-close")

    def write(self, data: bytes | bytearray | memoryview) -> None:
        if self._closing or not data:
            return  # as asyncio's: writes after close() go nowhere
        if self._ssl is None:
            self._send(data)
        elif self._tls_ready and not self._pending:
            self._encrypt(data)
        else:
            self._hold(bytes(data))
            self._maybe_pause_protocol()

    def close(self) -> None:
        """Flush what is buffered (after a TLS close_notify), then close; no more is delivered."""
        if self._closing:
            return
        self._closing = True
        self._stop_reading()
        if self._ssl is not None and self._tls_ready and not self._eof and not self._lost:
            # Queues our close_notify. The peer's is not waited for (SSLWantReadError): the
            # WebSocket close handshake, when there was one, already said all was done.
            with contextlib.suppress(ssl.SSLError):
                self._ssl.unwrap()
            self._flush_tls()
        if self._lost:
            return
        if self._wbuf:
            # Still read while the flush lasts, only to drop it: a peer that writes while we
            # write must not stall both sides, nor leave unread data that turns our FIN into a RST.
            self._reading = True
            readers(self._loop).add(self._fd, self._discard)
        else:
            self._end(None, soon=True, graceful=True)

    def abort(self) -> None:
        """Close at once: whatever is buffered is dropped."""
        self._force_close(None)

    # --- reading --------------------------------------------------------------------------

    def _start_reading(self) -> None:
        if not self._reading and not self._lost:
            self._reading = True
            readers(self._loop).add(self._fd, self._on_readable)

    def _stop_reading(self) -> None:
        if self._reading:
            self._reading = False
            readers(self._loop).remove(self._fd)

    def _on_readable(self) -> None:
        # The hot path, once per read. It reads into this thread's buffer: ``recv(n)`` allocates
        # n bytes, which glibc serves with mmap + mremap + munmap past 128 KiB; measured, that
        # doubled the CPU of a loopback round trip. The bytes handed on are the one copy left.
        buffers = self._buffers
        try:
            if self._stamping:
                size, ancdata, _, _ = self._sock.recvmsg_into(buffers, _ANCILLARY)
            else:
                size, ancdata = self._sock.recv_into(buffers[0]), None
        except (BlockingIOError, InterruptedError):
            return
        except OSError as exc:
            self._fatal(exc)
            return
        # The two clocks read back to back, and again if wsmon was preempted between them: the
        # stamp's age is taken off ``now``, so the time between the two reads would move the
        # arrival (measured beside a CPU-bound process: 0.3–0.4 ms, a few times a minute).
        now, wall = perf_counter(), time_ns()
        after = perf_counter()
        while after - now > _PAIR_DOUBT:
            now, wall = after, time_ns()
            after = perf_counter()
        if not size:
            self._eof_received()
            return
        when = _arrival(ancdata, now, wall) if ancdata else None
        if when is None:
            when = now
            self.kernel_stamps = False
            stamps.tally.loop_reads += 1
        else:
            self.kernel_stamps = True
        if self._ssl is not None:
            assert self._incoming is not None
            self._incoming.write(buffers[0][:size])
            self._last_when = when
            if self._handshake is not None:
                self._handshake_step()
            else:
                self._decrypt(when)
            return
        try:
            self._deliver(self._protocol, buffers[0][:size].tobytes(), when)  # type: ignore[misc]  # start() set it
        except Exception as exc:
            self._fatal(exc)

    def _eof_received(self) -> None:
        self._eof = True
        self._stop_reading()
        if self._handshake is not None:
            self._fatal(ConnectionResetError("the server closed the connection during the TLS handshake"))
            return
        if self._ssl is not None:
            self._decrypt(self._last_when)  # records that were complete are still delivered
            if self._closing:
                return
        self._protocol_eof()

    def _protocol_eof(self) -> None:
        """The peer is done sending: tell the protocol, then close unless it keeps writing."""
        self._eof = True
        try:
            keep_open = self._protocol.eof_received() if isinstance(self._protocol, asyncio.Protocol) else None
        except Exception as exc:
            self._fatal(exc)
            return
        if not keep_open or self._ssl is not None:  # TLS cannot stay half-open
            self.close()

    # --- writing --------------------------------------------------------------------------

    def _send(self, data: bytes | bytearray | memoryview) -> None:
        """Send raw bytes now, or buffer what the kernel does not take yet."""
        if self._lost:
            return
        wbuf = self._wbuf
        if wbuf:
            wbuf += data
        else:
            try:
                self.sent_at = perf_counter()
                sent = self._sock.send(data)
            except (BlockingIOError, InterruptedError):
                sent = 0
            except OSError as exc:
                self._fatal(exc)
                return
            if sent == len(data):
                return
            self._wbuf = bytearray(memoryview(data)[sent:])
            self._writing = True
            self._loop.add_writer(self._fd, self._on_writable)
        self._maybe_pause_protocol()

    def _on_writable(self) -> None:
        wbuf = self._wbuf
        assert wbuf is not None  # written to only while something waits in it
        try:
            sent = self._sock.send(wbuf)
        except (BlockingIOError, InterruptedError):
            return
        except OSError as exc:
            self._fatal(exc)
            return
        del wbuf[:sent]
        self._maybe_resume_protocol()
        if wbuf:
            return
        self._wbuf = None  # a burst's buffer is not kept for the connection's life
        self._writing = False
        self._loop.remove_writer(self._fd)
        if self._closing and not self._lost:
            self._end(None, soon=False, graceful=True)  # close() was waiting for the flush

    def _maybe_pause_protocol(self) -> None:
        if not self._writing_paused and self.get_write_buffer_size() > self._high_water and self._started:
            self._writing_paused = True
            try:
                self._protocol.pause_writing()  # type: ignore[union-attr]
            except Exception as exc:
                self._fatal(exc)

    def _maybe_resume_protocol(self) -> None:
        if self._writing_paused and self.get_write_buffer_size() <= self._low_water:
            self._writing_paused = False
            try:
                self._protocol.resume_writing()  # type: ignore[union-attr]
            except Exception as exc:
                self._fatal(exc)

    # --- TLS ------------------------------------------------------------------------------

    def _handshake_step(self) -> None:
        waiter, sslobj = self._handshake, self._ssl
        assert waiter is not None and sslobj is not None
        try:
            sslobj.do_handshake()
        except _TLS_WAIT:
            self._flush_tls()
            return
        except Exception as exc:  # SSLError, SSLCertVerificationError…
            self._flush_tls()  # the alert tells the server why
            self._fatal(exc)
            return
        self._flush_tls()
        if not waiter.done():
            waiter.set_result(None)

    def _flush_tls(self) -> None:
        """Send what the TLS layer has produced (records, alerts, close_notify)."""
        assert self._outgoing is not None
        if self._outgoing.pending:
            self._send(self._outgoing.read())

    def _decrypt(self, when: float) -> None:
        """Deliver every complete record in the incoming buffer, stamped with ``when``."""
        if self._closing or self._reading_paused:  # scheduled by start() or resume_reading()
            return
        sslobj, incoming, deliver = self._ssl, self._incoming, self._deliver
        assert sslobj is not None and incoming is not None and deliver is not None
        try:
            while not self._closing and not self._reading_paused:
                data = sslobj.read(_RECORD_SIZE)
                if not data:
                    raise ssl.SSLZeroReturnError
                deliver(self._protocol, data, when)
                # Skips the SSLWantReadError a further read would raise: exceptions cost.
                if not incoming.pending and not sslobj.pending():
                    break
        except _TLS_WAIT:
            pass
        except _TLS_EOF:  # close_notify, or EOF without one: the end either way
            if not self._closing:
                self._stop_reading()
                self._protocol_eof()
            return
        except Exception as exc:
            self._fatal(exc)
            return
        if self._pending:
            self._flush_pending()  # a renegotiation may have held writes back
        if not self._lost:
            self._flush_tls()  # e.g. the answer to a key update

    def _encrypt(self, data: bytes | bytearray | memoryview) -> None:
        sslobj = self._ssl
        assert sslobj is not None
        try:
            sent = sslobj.write(data)
        except _TLS_WAIT:  # a renegotiation in progress: the data goes once it is done
            self._hold(bytes(data))
            return
        except ssl.SSLError as exc:
            self._fatal(exc)
            return
        if sent < len(data):
            self._hold(bytes(memoryview(data)[sent:]))
        self._flush_tls()

    def _hold(self, data: bytes) -> None:
        """Keep plaintext until TLS takes it (the handshake, or a renegotiation, is under way)."""
        if self._pending is None:
            self._pending = []  # made when needed: most connections never hold anything
        self._pending.append(data)
        self._pending_size += len(data)

    def _flush_pending(self) -> None:
        pending, self._pending, self._pending_size = self._pending or [], None, 0
        if self._tls_ready:
            for data in pending:
                self._encrypt(data)
        else:
            self._pending, self._pending_size = pending or None, sum(map(len, pending))
        self._maybe_resume_protocol()

    # --- the end --------------------------------------------------------------------------

    def _fatal(self, exc: Exception) -> None:
        """An error ends the connection: it is raised by the step in progress, or reported once."""
        waiter = self._handshake
        if waiter is not None and not waiter.done():
            self._stop_reading()
            waiter.set_exception(exc)  # start_tls() raises it and closes
            return
        if not isinstance(exc, OSError):  # a network or TLS error is the peer's doing; others are bugs
            self._loop.call_exception_handler(
                {"message": "fatal error on a stamped transport", "exception": exc, "transport": self}
            )
        self._force_close(exc)

    def _force_close(self, exc: Exception | None) -> None:
        if self._lost:
            return
        self._closing = True
        self._stop_reading()
        if self._writing:
            self._writing = False
            self._loop.remove_writer(self._fd)
        self._wbuf = self._pending = None
        self._pending_size = 0
        self._end(exc, soon=True, graceful=False)

    def _end(self, exc: Exception | None, *, soon: bool, graceful: bool) -> None:
        """Close the socket; a started protocol hears ``connection_lost(exc)`` (soon or now)."""
        self._lost = True
        if not self._started:
            self._close_socket(graceful)  # nobody to tell: a failed opening step raises instead
        elif soon:
            self._loop.call_soon(self._connection_lost, exc, graceful)
        else:
            self._connection_lost(exc, graceful)

    def _connection_lost(self, exc: Exception | None, graceful: bool) -> None:
        try:
            assert self._protocol is not None
            self._protocol.connection_lost(exc)
        finally:
            self._close_socket(graceful)
            self._protocol = self._deliver = None

    def _close_socket(self, graceful: bool) -> None:
        self._stop_reading()
        if graceful:
            self._discard()  # what came unread since: closing with it would send a RST
        self._sock.close()

    def _discard(self) -> None:
        """Read and drop what has arrived (a closing transport delivers nothing more)."""
        for _ in range(16):  # bounded: a peer sending without end cannot hold the loop
            try:
                if self._sock.recv_into(self._buffers[0]):
                    continue
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                pass
            self._stop_reading()  # EOF or an error: nothing more will come
            return


_per_thread = threading.local()


def _read_buffers() -> list[memoryview]:
    """This thread's read buffer (as the one-item list ``recvmsg_into`` takes).

    Shared by every transport of the thread: a read is copied out before anything else runs
    there. Per thread, not per process: the GIL is released during ``recvmsg_into``.
    """
    try:
        buffers: list[memoryview] = _per_thread.buffers
    except AttributeError:
        buffers = _per_thread.buffers = [memoryview(bytearray(_READ_SIZE))]
    return buffers
