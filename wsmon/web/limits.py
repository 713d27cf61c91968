"""Bounds on what HTTP clients can make wsmon hold: probes, connections, time and bytes.

- ``/probe`` runs at most ``max_probes`` probes at once (by default an eighth of the
  open-files limit); the excess is answered 503 with ``Retry-After`` at once, never run short
  of file descriptors (it would fail for a wrong reason).
- wsmon holds at most ``max_connections`` connections (HTTP and the WebSockets upgraded from
  them; by default a quarter of the open-files limit), one client address at most
  ``max_connections_per_client`` of them (an eighth); the next is answered 503 and closed
  without being read. ``[web] trusted_proxies`` have no cap of their own (they carry
  everybody's requests). The rest of the descriptors is left to persistent targets, pushes,
  and the bursts of connections the event loop accepts before wsmon can answer them: uvloop
  accepts all that wait, and drops connections unanswered once no descriptor is left. The
  listen backlog is kept to an eighth of the limit for the same reason.
- A request's headers must arrive within ``read_timeout`` of the connection (or of its first
  byte on a kept-alive one), and its body within ``read_timeout`` of its headers: a client
  that dribbles (slowloris) is answered 408 and closed. uvicorn has no such timer: its
  keep-alive timeout only runs between requests.
- A request body is at most ``max_body`` bytes (413): the API takes small JSON objects only.

The connection-level parts are an HTTP protocol for uvicorn (``guarded_http_protocol``), the
rest ASGI (``ProbeSlots``, ``BodyLimit``).
"""

from __future__ import annotations

import asyncio
import json
import resource
from collections.abc import Callable
from dataclasses import dataclass

from starlette.types import ASGIApp, Message, Receive, Scope, Send
from uvicorn.protocols.http.h11_impl import H11Protocol

__all__ = ["BodyLimit", "ProbeSlots", "WebLimits", "guarded_http_protocol"]

MAX_BODY = 64 << 10
DEFAULT_READ_TIMEOUT = 10.0
_SWEEP_EVERY = 1024  # connections between sweeps of the table of open connections
_LINGER = 0.5  # seconds an answered connection that must close waits for the client's request


@dataclass(frozen=True, slots=True)
class WebLimits:
    # None: no bound (tests, embedding); `wsmon serve` always sets them (for_open_files).
    max_probes: int | None = None
    max_connections: int | None = None
    max_connections_per_client: int | None = None
    read_timeout: float = DEFAULT_READ_TIMEOUT
    max_body: int = MAX_BODY
    backlog: int = 2048  # connections the kernel queues until wsmon accepts them (uvicorn's default)

    @classmethod
    def for_open_files(
        cls,
        open_files: int | None = None,
        *,
        max_probes: int | None = None,
        max_connections: int | None = None,
        max_connections_per_client: int | None = None,
        read_timeout: float = DEFAULT_READ_TIMEOUT,
    ) -> WebLimits:
        """The limits for a process that may open ``open_files`` descriptors (default: its
        soft ``RLIMIT_NOFILE``); values given win over the defaults sized from it."""
        if open_files is None:
            open_files = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
            if open_files == resource.RLIM_INFINITY:
                open_files = 1 << 20
        return cls(
            max_probes=max_probes or default_max_probes(open_files),
            max_connections=max_connections or max(1, open_files // 4),
            max_connections_per_client=max_connections_per_client or max(1, open_files // 8),
            read_timeout=read_timeout,
            backlog=min(2048, max(16, open_files // 8)),
        )


def default_max_probes(open_files: int) -> int:
    """An eighth of the open-files limit: a probe holds two descriptors (its socket and its
    scraper's connection, one of the quarter for connections), and most are left free."""
    return max(1, open_files // 8)


class ProbeSlots:
    """How many ``/probe`` requests run; ``take`` is False when all slots are busy."""

    def __init__(self, limit: int | None) -> None:
        self.limit = limit
        self.busy = 0

    def take(self) -> bool:
        if self.limit is not None and self.busy >= self.limit:
            return False
        self.busy += 1
        return True

    def give(self) -> None:
        self.busy -= 1


class BodyLimit:
    """Reads a request's body up front, within ``read_timeout`` and ``max_body`` bytes, then
    hands it to the app: 413 when it is too large, 408 when it does not arrive in time."""

    def __init__(self, app: ASGIApp, limits: WebLimits) -> None:
        self._app = app
        self._limits = limits

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not _has_body(scope):
            await self._app(scope, receive, send)
            return
        limit = self._limits.max_body
        declared = _header(scope, b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > limit):
            await _refuse(send, 413, f"the request body is larger than {limit} bytes")
            return
        body = bytearray()
        try:
            async with asyncio.timeout(self._limits.read_timeout):
                while True:
                    message = await receive()
                    if message["type"] == "http.disconnect":
                        return  # the client left: nobody to answer
                    body += message.get("body", b"")
                    if len(body) > limit:
                        await _refuse(send, 413, f"the request body is larger than {limit} bytes")
                        return
                    if not message.get("more_body", False):
                        break
        except TimeoutError:
            await _refuse(send, 408, f"the request body did not arrive within {self._limits.read_timeout:g}s")
            return
        delivered = False

        async def replay() -> Message:
            nonlocal delivered
            if delivered:
                return await receive()  # what comes next: the disconnect
            delivered = True
            return {"type": "http.request", "body": bytes(body), "more_body": False}

        await self._app(scope, replay, send)


def _header(scope: Scope, name: bytes) -> str | None:
    return next((v.decode("latin-1").strip() for k, v in scope["headers"] if k.lower() == name), None)


def _has_body(scope: Scope) -> bool:
    length = _header(scope, b"content-length")
    return (length is not None and length != "0") or _header(scope, b"transfer-encoding") is not None


async def _refuse(send: Send, status: int, message: str) -> None:
    body = json.dumps({"error": message}).encode()
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        (b"connection", b"close"),  # the rest of the body is not read: the connection cannot go on
    ]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def _raw_response(status: str, message: str) -> bytes:
    body = (message + "\n").encode()
    return (
        f"HTTP/1.1 {status}\r\ncontent-type: text/plain; charset=utf-8\r\nretry-after: 1\r\n"
        f"connection: close\r\ncontent-length: {len(body)}\r\n\r\n"
    ).encode() + body


_TOO_MANY = _raw_response("503 Service Unavailable", "too many connections from your address: try again later")
_FULL = _raw_response("503 Service Unavailable", "too many connections: try again later")
_TOO_SLOW = _raw_response("408 Request Timeout", "the request did not arrive in time")


class _Open:
    """The open connections, in all and by client address.

    An upgraded connection (a WebSocket) belongs to another protocol, which never reports
    its end here: closed transports are dropped whenever a limit is reached, and in a sweep
    every ``_SWEEP_EVERY`` connections so that the table never keeps them long."""

    def __init__(self) -> None:
        self.all: set[asyncio.BaseTransport] = set()
        self.by_address: dict[str, set[asyncio.BaseTransport]] = {}
        self.lingering = 0  # answered connections waiting to close (not counted in `all`)
        self._made = 0

    def admit(self, transport: asyncio.BaseTransport, address: str | None, limits: WebLimits) -> bytes | None:
        """Count ``transport`` in, or say why not (the answer to send)."""
        self._made += 1
        if self._made % _SWEEP_EVERY == 0:
            self._sweep()
        if limits.max_connections is not None and not _below(self.all, limits.max_connections):
            self._sweep()
            if not _below(self.all, limits.max_connections):
                return _FULL
        if address is not None:
            mine = self.by_address.setdefault(address, set())
            if limits.max_connections_per_client is not None and not _below(mine, limits.max_connections_per_client):
                return _TOO_MANY
            mine.add(transport)
        self.all.add(transport)
        return None

    def release(self, transport: asyncio.BaseTransport, address: str | None) -> None:
        self.all.discard(transport)
        mine = None if address is None else self.by_address.get(address)
        if address is not None and mine is not None:
            mine.discard(transport)
            if not mine:
                del self.by_address[address]

    def _sweep(self) -> None:
        self.all.difference_update([t for t in self.all if t.is_closing()])
        for address, transports in list(self.by_address.items()):
            transports.difference_update([t for t in transports if t.is_closing()])
            if not transports:
                del self.by_address[address]


def _below(transports: set[asyncio.BaseTransport], cap: int) -> bool:
    if len(transports) >= cap:
        transports.difference_update([t for t in transports if t.is_closing()])
    return len(transports) < cap


def guarded_http_protocol(limits: WebLimits, trusted: Callable[[str], bool]) -> type[H11Protocol]:
    """uvicorn's HTTP/1.1 protocol with a read timeout for request headers and caps on open
    connections, in all and per client address (``trusted`` ones, reverse proxies, exempt)."""
    open_connections = _Open()

    class GuardedHTTPProtocol(H11Protocol):
        _timer: asyncio.TimerHandle | None = None
        _address: str | None = None
        _counted = False
        _ending = False  # answered (503 or 408) and closing: nothing more is read
        _lingering = False

        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            super().connection_made(transport)
            address = self.client[0] if self.client else None
            if address is not None and trusted(address):
                address = None  # a proxy's connections carry everybody's requests
            refusal = open_connections.admit(transport, address, limits)
            if refusal is not None:
                self._end(refusal)
                return
            self._counted, self._address = True, address
            self._arm()

        def data_received(self, data: bytes) -> None:
            if self._ending:
                # The request of a refused or timed-out connection is discarded unread; with
                # nothing left unread, closing now frees the descriptor without a reset.
                self.transport.close()
                return
            cycle = self.cycle
            if self._timer is None and (cycle is None or cycle.response_complete):
                self._arm()  # the first bytes of the next request on a kept-alive connection
            super().data_received(data)
            if self.cycle is not cycle:
                self._disarm()  # its headers are in; BodyLimit times the body

        def connection_lost(self, exc: Exception | None) -> None:
            self._disarm()
            if self._counted:
                open_connections.release(self.transport, self._address)
            if self._lingering:
                open_connections.lingering -= 1
            super().connection_lost(exc)

        def _end(self, answer: bytes) -> None:
            """Answer, then close once the client's request is in, or after a moment at most.

            Closing at once would reset the connection when the request arrives, and many
            clients lose the answer to the reset (or never read it, failing to send). Under a
            flood, though, descriptors count more: past ``max_connections`` waiting ones, the
            close is immediate."""
            self._disarm()
            self._ending = True
            self.transport.write(answer)
            cap = limits.max_connections
            if cap is not None and open_connections.lingering >= cap:
                self.transport.close()
                return
            self._lingering = True
            open_connections.lingering += 1
            if self.transport.can_write_eof():
                self.transport.write_eof()
            self._timer = self.loop.call_later(_LINGER, self.transport.close)

        def _arm(self) -> None:
            self._disarm()
            self._timer = self.loop.call_later(limits.read_timeout, self._read_timed_out)

        def _disarm(self) -> None:
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None

        def _read_timed_out(self) -> None:
            self._timer = None
            transport = self.transport
            if transport.is_closing() or transport.get_protocol() is not self:
                return  # closed, or upgraded to a WebSocket: not this protocol's business
            if self.cycle is not None and not self.cycle.response_complete:
                return  # a request is being answered
            self._end(_TOO_SLOW)

    return GuardedHTTPProtocol
