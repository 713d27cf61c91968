"""Opening a WebSocket: resolve → TCP connect (or proxy CONNECT) → TLS → HTTP upgrade.

Shared by one-off probes and persistent connections: each phase is timed on the caller's
``PhaseClock``, which also knows the phase in progress, so a deadline that hits is classified by it.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Callable
from time import perf_counter
from typing import Any, TypeVar, cast

from wsmon.probe.module import Module
from wsmon.probe.phases import PhaseClock
from wsmon.probe.reasons import Phase
from wsmon.ws.connection import ClientConnection
from wsmon.ws.handshake import build_request, new_key
from wsmon.ws.proxy import parse_proxy, proxy_connect
from wsmon.ws.tls import certificate_expiry, client_context
from wsmon.ws.url import TargetURL

__all__ = ["Opening"]

_FAMILIES = {"ip4": socket.AF_INET, "ip6": socket.AF_INET6}

C = TypeVar("C", bound=ClientConnection)


class Opening:
    """One attempt to open a connection, timed on ``clock``; what it learnt stays readable
    after a failure (the phases on the clock, the rest here)."""

    def __init__(self, target: TargetURL, module: Module, clock: PhaseClock) -> None:
        self.target, self.module, self.clock = target, module, clock
        self.ip_protocol: int | None = None
        self.tls_version: str | None = None
        self.cert_expiry: float | None = None

    async def open(self, factory: Callable[[bytes, str, asyncio.AbstractEventLoop], C]) -> C:
        """Open the WebSocket; ``factory(request, key, loop)`` makes the connection object."""
        loop = asyncio.get_running_loop()
        target, module, clock = self.target, self.module, self.clock
        proxy = parse_proxy(module.proxy_url)
        began = perf_counter()
        if proxy is None and target.is_ip:  # nothing to look up
            family = socket.AF_INET6 if ":" in target.host else socket.AF_INET
            addresses: list[tuple[int, Any]] = [(family, (target.host, target.port))]
        else:
            host, port = (proxy.host, proxy.port) if proxy else (target.host, target.port)
            addresses = await self._resolve(loop, host, port)
        began = clock.timed(Phase.RESOLVE, began)
        clock.enter(Phase.CONNECT)
        key = new_key()
        headers = _headers(module, target)
        conn = factory(build_request(target.host_header, target.resource, key, headers, module.subprotocols), key, loop)
        context = client_context(module.tls) if target.secure else None
        server_name = (module.tls.server_name or target.host) if context else None
        sock: socket.socket | None = None
        try:
            if proxy is None:
                # The upgrade request goes out once TLS is up, or at once on a plain connection.
                conn.request_on_connect = context is None
                transport = await self._connect(loop, addresses, conn)
                began = clock.timed(Phase.CONNECT, began)
                if context is not None:
                    clock.enter(Phase.TLS)
                    tls = await loop.start_tls(
                        cast(asyncio.WriteTransport, transport), conn, context, server_hostname=server_name
                    )
                    assert tls is not None  # None only when the loop could not start TLS at all
                    transport = tls
                    conn.send_request(transport)
            else:
                sock = await self._connect_socket(loop, addresses)
                await proxy_connect(loop, sock, target, proxy)
                began = clock.timed(Phase.CONNECT, began)
                clock.enter(Phase.TLS if context else Phase.UPGRADE)
                transport, _ = await loop.create_connection(
                    lambda: conn, sock=sock, ssl=context, server_hostname=server_name
                )
            if context is not None:
                ssl_object = transport.get_extra_info("ssl_object")
                self.tls_version = ssl_object.version() if ssl_object else None
                self.cert_expiry = certificate_expiry(ssl_object)
                began = clock.timed(Phase.TLS, began, version=self.tls_version)
            clock.enter(Phase.UPGRADE)
            response = await conn.opened
        except BaseException as exc:
            if sock is not None:
                sock.close()  # a no-op once a transport owns it
            if isinstance(exc, asyncio.CancelledError) and conn.response is not None:
                conn.go_away()  # cancelled (wsmon stopping) just as the upgrade completed
            else:
                conn.abort()
            if not conn.opened.done():
                conn.opened.cancel()  # nobody will await it: no "exception never retrieved"
            raise
        clock.timed(Phase.UPGRADE, began, status=response.status)
        return conn

    async def _resolve(self, loop: asyncio.AbstractEventLoop, host: str, port: int) -> list[tuple[int, Any]]:
        """Addresses to try, the preferred IP protocol first."""
        module = self.module
        infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        addresses: list[tuple[int, Any]] = [(family, sockaddr) for family, _, _, _, sockaddr in infos]
        if module.ip_protocol != "auto":
            wanted = _FAMILIES[module.ip_protocol]
            preferred = [a for a in addresses if a[0] == wanted]
            others = [a for a in addresses if a[0] != wanted] if module.ip_protocol_fallback else []
            addresses = preferred + others
        if not addresses:
            raise socket.gaierror(f"no {module.ip_protocol} address for the host")
        return addresses

    async def _connect(
        self, loop: asyncio.AbstractEventLoop, addresses: list[tuple[int, Any]], conn: ClientConnection
    ) -> asyncio.BaseTransport:
        """A transport to the first address that accepts.

        ``create_connection`` with an IP literal, not ``sock_connect``: uvloop's ``sock_connect``
        looks the address up again in its thread pool, which cost ~40% of a probe's CPU here.
        """
        last: OSError | None = None
        for family, sockaddr in addresses:
            try:
                transport, _ = await loop.create_connection(lambda: conn, sockaddr[0], sockaddr[1], family=family)
            except OSError as exc:
                last = exc
                continue
            self.ip_protocol = 6 if family == socket.AF_INET6 else 4
            return transport
        assert last is not None
        raise last

    async def _connect_socket(self, loop: asyncio.AbstractEventLoop, addresses: list[tuple[int, Any]]) -> socket.socket:
        """A connected socket to the first address that accepts (to talk to a proxy first)."""
        last: OSError | None = None
        for family, sockaddr in addresses:
            sock = socket.socket(family, socket.SOCK_STREAM)
            try:
                sock.setblocking(False)
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                await loop.sock_connect(sock, sockaddr)
            except OSError as exc:
                sock.close()
                last = exc
                continue
            except BaseException:
                sock.close()
                raise
            self.ip_protocol = 6 if family == socket.AF_INET6 else 4
            return sock
        assert last is not None
        raise last


def _headers(module: Module, target: TargetURL) -> tuple[tuple[str, str], ...]:
    """The module's request headers, plus basic auth from the URL's userinfo unless set."""
    headers = module.request_headers
    if target.basic_auth and not any(k.lower() == "authorization" for k, _ in headers):
        headers = (*headers, ("Authorization", f"Basic {target.basic_auth}"))
    return headers
