"""Opening a WebSocket: resolve → TCP connect (or proxy CONNECT) → TLS → HTTP upgrade.

Shared by one-off probes and persistent connections: each phase is timed on the caller's
``PhaseClock``, which also knows the phase in progress, so a deadline that hits is classified by it.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Callable
from time import perf_counter
from typing import Any, TypeVar

from wsmon.probe.module import Module
from wsmon.probe.phases import PhaseClock
from wsmon.probe.reasons import Phase
from wsmon.ws.connection import ClientConnection
from wsmon.ws.handshake import build_request, new_key
from wsmon.ws.proxy import parse_proxy
from wsmon.ws.stamped import StampedTransport
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
        transport: StampedTransport | None = None
        opened = conn.opened
        assert opened is not None  # a new connection's
        try:
            # Our own transport on the socket: it reads the kernel's receive timestamps, so a
            # pong that waited for a busy loop still carries its arrival time (wsmon.ws.stamped).
            transport = await StampedTransport.connect(addresses, proxy=proxy, target=target)
            self.ip_protocol = 6 if transport.get_extra_info("socket").family == socket.AF_INET6 else 4
            began = clock.timed(Phase.CONNECT, began)
            if context is not None:
                clock.enter(Phase.TLS)
                await transport.start_tls(context, server_name)
                ssl_object = transport.get_extra_info("ssl_object")
                self.tls_version = ssl_object.version()
                self.cert_expiry = certificate_expiry(ssl_object)
                began = clock.timed(Phase.TLS, began, version=self.tls_version)
            clock.enter(Phase.UPGRADE)
            transport.start(conn)  # connection_made: the upgrade request goes out
            response = await opened
        except BaseException as exc:
            if isinstance(exc, asyncio.CancelledError) and conn.response is not None:
                conn.go_away()  # cancelled (wsmon stopping) just as the upgrade completed
            elif transport is not None:
                transport.abort()
            if not opened.done():
                opened.cancel()  # nobody will await it: no "exception never retrieved"
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


def _headers(module: Module, target: TargetURL) -> tuple[tuple[str, str], ...]:
    """The module's request headers, plus basic auth from the URL's userinfo unless set."""
    headers = module.request_headers
    if target.basic_auth and not any(k.lower() == "authorization" for k, _ in headers):
        headers = (*headers, ("Authorization", f"Basic {target.basic_auth}"))
    return headers
