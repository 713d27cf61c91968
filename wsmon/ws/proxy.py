"""An explicit HTTP CONNECT proxy: only the one a module names, never ``*_proxy`` env vars."""

from __future__ import annotations

import asyncio
import socket
from dataclasses import dataclass
from functools import lru_cache
from urllib.parse import urlsplit

from wsmon.errors import ProxyError
from wsmon.ws.url import TargetURL, userinfo_credentials

__all__ = ["Proxy", "parse_proxy", "proxy_connect"]

_MAX_HEAD = 16 * 1024


@dataclass(frozen=True, slots=True)
class Proxy:
    host: str
    port: int
    authorization: str | None  # "Basic …" from the proxy URL's userinfo


@lru_cache(maxsize=64)
def parse_proxy(url: str | None) -> Proxy | None:
    if url is None:
        return None
    parts = urlsplit(url)
    credentials = userinfo_credentials(parts)
    auth = None if credentials is None else f"Basic {credentials}"
    return Proxy(host=parts.hostname or "", port=parts.port or 3128, authorization=auth)


async def proxy_connect(loop: asyncio.AbstractEventLoop, sock: socket.socket, target: TargetURL, proxy: Proxy) -> None:
    """Ask the proxy for a tunnel to the target; raise ProxyError unless it answers 2xx."""
    authority = f"[{target.host}]:{target.port}" if ":" in target.host else f"{target.host}:{target.port}"
    lines = [f"CONNECT {authority} HTTP/1.1", f"Host: {authority}"]
    if proxy.authorization:
        lines.append(f"Proxy-Authorization: {proxy.authorization}")
    await loop.sock_sendall(sock, ("\r\n".join(lines) + "\r\n\r\n").encode())
    head = b""
    # Read byte by byte past the blank line would be slow; a proxy sends nothing more
    # until the tunnel is used, so whatever arrives up to the blank line is the answer.
    while b"\r\n\r\n" not in head:
        chunk = await loop.sock_recv(sock, 4096)
        if not chunk:
            raise ProxyError("the proxy closed the connection during CONNECT")
        head += chunk
        if len(head) > _MAX_HEAD:
            raise ProxyError("the proxy's answer to CONNECT is too large")
    status_line = head.split(b"\r\n", 1)[0].decode("latin-1")
    parts = status_line.split(" ", 2)
    if len(parts) < 2 or not parts[1].isdigit() or not parts[1].startswith("2"):
        raise ProxyError(f"the proxy answered CONNECT with {status_line[:60]!r}")
