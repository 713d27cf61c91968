"""The WebSocket opening handshake (RFC 6455 §4), client side, without I/O."""

from __future__ import annotations

import base64
import hashlib
import os
from dataclasses import dataclass

__all__ = ["HandshakeError", "Response", "accept_key", "build_request", "new_key", "parse_response"]

_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
MAX_HEAD = 64 * 1024  # a response head larger than this is not a WebSocket server talking


class HandshakeError(Exception):
    """The server answered, but not with a valid WebSocket upgrade."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True, slots=True)
class Response:
    status: int
    headers: dict[str, str]  # lower-case names; repeated headers joined with ", "
    subprotocol: str | None


def new_key() -> str:
    return base64.b64encode(os.urandom(16)).decode()


def accept_key(key: str) -> str:
    return base64.b64encode(hashlib.sha1(key.encode() + _GUID).digest()).decode()


def build_request(
    host: str,
    resource: str,
    key: str,
    headers: tuple[tuple[str, str], ...],
    subprotocols: tuple[str, ...] = (),
) -> bytes:
    lines = [
        f"GET {resource} HTTP/1.1",
        f"Host: {host}",
        "Upgrade: websocket",
        "Connection: Upgrade",
        f"Sec-WebSocket-Key: {key}",
        "Sec-WebSocket-Version: 13",
    ]
    if subprotocols:
        lines.append(f"Sec-WebSocket-Protocol: {', '.join(subprotocols)}")
    lines.extend(f"{name}: {value}" for name, value in headers)
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def _tokens(value: str) -> set[str]:
    return {t.strip().lower() for t in value.split(",") if t.strip()}


def parse_response(head: bytes, key: str, subprotocols: tuple[str, ...] = ()) -> Response:
    """Validate a response head (without the final blank line); raise HandshakeError."""
    try:
        text = head.decode("latin-1")
        status_line, *header_lines = text.split("\r\n")
        version, code, *_ = status_line.split(" ", 2)
        status = int(code)
    except ValueError:
        raise HandshakeError("the server did not answer with HTTP") from None
    if not version.startswith("HTTP/1."):
        raise HandshakeError(f"unexpected protocol in status line: {version[:20]!r}")
    headers: dict[str, str] = {}
    for line in header_lines:
        name, sep, value = line.partition(":")
        if not sep:
            raise HandshakeError("malformed header line in the upgrade response", status)
        name = name.strip().lower()
        value = value.strip()
        headers[name] = f"{headers[name]}, {value}" if name in headers else value
    if status != 101:
        raise HandshakeError(f"the server answered HTTP {status} instead of 101", status)
    if "websocket" not in _tokens(headers.get("upgrade", "")):
        raise HandshakeError("the 101 answer lacks 'Upgrade: websocket'", status)
    if "upgrade" not in _tokens(headers.get("connection", "")):
        raise HandshakeError("the 101 answer lacks 'Connection: Upgrade'", status)
    if headers.get("sec-websocket-accept") != accept_key(key):
        raise HandshakeError("wrong Sec-WebSocket-Accept in the 101 answer", status)
    if headers.get("sec-websocket-extensions"):
        raise HandshakeError("the server enabled an extension that was not offered", status)
    subprotocol = headers.get("sec-websocket-protocol")
    if subprotocol is not None and subprotocol not in subprotocols:
        raise HandshakeError(f"the server chose subprotocol {subprotocol!r}, which was not offered", status)
    return Response(status=status, headers=headers, subprotocol=subprotocol)
