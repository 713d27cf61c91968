"""A WebSocket client connection on a plain ``asyncio.Protocol``.

Measured here (see bench/): per probe, ``websockets``' asyncio client costs 6× the CPU of a Go
prober and its sans-I/O core on a Protocol 2.2×; this lean path, with the handshake and framing
of ``wsmon.handshake`` / ``wsmon.frames``, matches Go. It also keeps timestamps honest: the send
time is read right before the send system call (``StampedTransport.sent_at``; before
``transport.write`` on another transport) and a ping whose send took too long to tell when it
left is not timed at all (``SEND_DOUBT``), and the receive time is the kernel's arrival time
when the transport has it (``StampedTransport`` calls ``data_received_at``), else it is read
first thing in ``data_received``, before any parsing.

``ClientConnection`` does the protocol work (handshake, framing, answering pings, the close
handshake) and reports what arrives through methods that subclasses override.
"""

from __future__ import annotations

import asyncio
from time import perf_counter
from typing import cast

from wsmon.errors import ConnectionClosed, HandshakeError, ProtocolError
from wsmon.ws import stamps
from wsmon.ws.frames import OP_CLOSE, OP_PING, OP_PONG, OP_TEXT, FrameParser, close_payload, encode_frame, parse_close
from wsmon.ws.handshake import MAX_HEAD, Response, parse_response, without_headers

__all__ = ["SEND_DOUBT", "ClientConnection"]

# Seconds from reading a ping's send time to its send system call having returned, beyond
# which the send time is in doubt: wsmon was preempted somewhere in between (a neighbour took
# the core, the host stole it), and the packet may have left at any moment of it. Counted as
# round trip, such a wait was measured here at 3 ms. A send itself takes a few µs to a server
# across the network; to one on the same host the kernel delivers inside the system call,
# measured at up to ~0.4 ms after the sender sat idle. The bound is the error a reported round
# trip may have (0.5 ms): no wait on the sending side beyond it is ever counted as round trip.
SEND_DOUBT = 0.000_5


class ClientConnection(asyncio.Protocol):
    # Slots: a monitor holds thousands of these for days; a __dict__ each is ~40 % more memory.
    __slots__ = (
        "_head",
        "_key",
        "_request",
        "_subprotocols",
        "close_code",
        "close_sent",
        "is_lost",
        "opened",
        "parser",
        "response",
        "transport",
    )

    def __init__(
        self,
        request: bytes,
        key: str,
        loop: asyncio.AbstractEventLoop,
        subprotocols: tuple[str, ...] = (),
        max_message_size: int = 1 << 20,
    ) -> None:
        self.transport: asyncio.Transport | None = None
        # Done when the upgrade succeeded (with the response) or failed (with why); let go of
        # once the connection has settled.
        self.opened: asyncio.Future[Response] | None = loop.create_future()
        self._request = request
        self._key = key
        self._subprotocols = subprotocols
        self._head: bytearray | None = None  # the upgrade response, while it comes in pieces
        self.parser = FrameParser(max_message_size)
        self.response: Response | None = None
        self.close_sent = False
        self.close_code: int | None = None  # the code of the peer's close frame, once received
        self.is_lost = False

    # --- asyncio.Protocol ---------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        """The transport is up (TLS done, for wss): the upgrade request goes out."""
        # uvloop's transports implement asyncio.Transport without subclassing it.
        self.transport = cast(asyncio.Transport, transport)
        self.transport.write(self._request)
        self._request = b""  # sent: a long-lived connection need not keep it

    def data_received(self, data: bytes) -> None:
        # First: everything after this would make round trips look longer.
        self.data_received_at(data, perf_counter())

    def data_received_at(self, data: bytes, now: float) -> None:
        """``data`` arrived at ``now`` (perf_counter): from a transport that knows when."""
        if self.response is None:
            data = self._receive_head(data, now)
            if not data:
                return
        payload = self.parser.whole_pong(data)
        if payload is not None:
            self.pong_received(payload, now)
            return
        try:
            events = self.parser.feed(data)
        except ProtocolError as exc:
            self._fail(exc)
            return
        for opcode, payload in events:
            if opcode == OP_PONG:
                self.pong_received(payload, now)
            elif opcode == OP_PING:
                self._send(OP_PONG, payload)
            elif opcode == OP_CLOSE:
                self._close_received(payload)
            else:
                self.message_received(opcode, payload, now)

    def eof_received(self) -> bool | None:
        return None  # let the transport close itself; connection_lost reports it

    def connection_lost(self, exc: Exception | None) -> None:
        self.is_lost = True
        why = f": {exc}" if exc else ""
        self._not_opened(ConnectionClosed(f"the server closed the connection{why}"))
        self.lost(exc)

    def settle(self) -> None:
        """The connection is open for good: keep the answer's status and subprotocol, drop its
        headers, the key and the future the opening awaited (~800 bytes a connection, 8 MB
        over 10,000 persistent ones)."""
        if self.response is not None:
            self.response = without_headers(self.response.status, self.response.subprotocol)
        self._key = ""
        self.opened = None

    @property
    def kernel_stamps(self) -> bool:
        """Whether the latest arrival time came from the kernel (not from when it was read)."""
        return self.transport is not None and bool(self.transport.get_extra_info("kernel_stamps", False))

    # --- sending ------------------------------------------------------------------------

    def _send(self, opcode: int, payload: bytes) -> None:
        transport = self.transport
        if transport is not None and not transport.is_closing():
            transport.write(encode_frame(opcode, payload))

    def send_ping(self, payload: bytes) -> float | None:
        """Send a ping; returns its send time (taken right before the send system call), or None
        when that time is in doubt (``SEND_DOUBT``): its pong proves the connection alive, but
        the round trip from it would not be the wire's."""
        sent = self._timed_write(encode_frame(OP_PING, payload))
        if perf_counter() - sent <= SEND_DOUBT:
            return sent
        stamps.tally.untimed_pings += 1
        return None

    def send_text(self, text: str) -> float:
        return self._timed_write(encode_frame(OP_TEXT, text.encode()))

    def _timed_write(self, frame: bytes) -> float:
        """Write ``frame``; returns when it went to the kernel. A stamped transport reads the clock
        again right before its send system call (``sent_at``); where it did not send now (data
        buffered behind earlier writes) or another transport is used, the time before the write."""
        transport = self.transport
        assert transport is not None
        before = perf_counter()
        transport.write(frame)
        sent: float = getattr(transport, "sent_at", before)
        return sent if sent > before else before

    def send_close(self, code: int = 1000, reason: str = "") -> None:
        if not self.close_sent:
            self.close_sent = True
            self._send(OP_CLOSE, close_payload(code, reason))

    def go_away(self) -> None:
        """Leave now, politely: a close frame with 1001 (going away), then the TCP connection
        closed once that frame is written — without waiting for the peer's answer."""
        self.send_close(1001)
        if self.transport is not None:
            self.transport.close()

    def abort(self) -> None:
        if self.transport is not None:
            self.transport.abort()

    def abort_unless_closing(self) -> None:
        """Drop the connection unless it is already being closed (after a close handshake)."""
        if self.transport is not None and not self.transport.is_closing():
            self.transport.abort()

    # --- receiving ----------------------------------------------------------------------

    def _receive_head(self, data: bytes, now: float) -> bytes:
        """Collect the upgrade response; returns bytes that follow it (frames already sent)."""
        head = self._head
        if head is not None:  # the head came in pieces: look for its end from just before this one
            start = max(0, len(head) - 3)
            head += data
            end = head.find(b"\r\n\r\n", start)
        else:  # usually it comes whole, and needs no copying
            end = data.find(b"\r\n\r\n")
            if end < 0:
                self._head = head = bytearray(data)
        if end < 0:
            assert head is not None
            if len(head) > MAX_HEAD:
                self._fail(HandshakeError("the upgrade response head is larger than 64 KiB"))
            return b""
        if head is not None:
            data = bytes(head)
            self._head = None
        try:
            self.response = parse_response(data[:end], self._key, self._subprotocols)
        except HandshakeError as exc:
            self._fail(exc)
            return b""
        opened = self.opened
        if opened is not None and not opened.done():
            opened.set_result(self.response)
        return data[end + 4 :]

    def _close_received(self, payload: bytes) -> None:
        code, _ = parse_close(payload)
        self.close_code = 1005 if code is None else code
        # Echo the close (RFC 6455 §5.5.1), then the client may drop the TCP connection.
        self.send_close(self.close_code if code is not None else 1000)
        self.close_received(self.close_code)
        if self.transport is not None:
            self.transport.close()

    def _not_opened(self, exc: Exception) -> None:
        """The opening, if it still awaits the upgrade, hears why it will not come."""
        opened = self.opened
        if opened is not None and not opened.done():
            opened.set_exception(exc)

    def _fail(self, exc: Exception) -> None:
        self._not_opened(exc)
        self.failed(exc)
        if isinstance(exc, ProtocolError) and self.response is not None:
            self.send_close(exc.code)  # fail the WebSocket connection with its reason (RFC 6455 §7.1.7)
        self.abort()

    # --- what subclasses hear about ------------------------------------------------------

    def pong_received(self, payload: bytes, now: float) -> None:
        """A pong arrived at ``now`` (perf_counter)."""

    def message_received(self, opcode: int, payload: bytes, now: float) -> None:
        """A data message arrived (payload empty unless ``parser.keep_data`` was set)."""

    def close_received(self, code: int) -> None:
        """The peer sent a close frame (already answered)."""

    def failed(self, exc: Exception) -> None:
        """The handshake or the framing went wrong; the connection is being aborted."""

    def lost(self, exc: Exception | None) -> None:
        """The transport is gone (after a close, an error or the peer hanging up)."""
