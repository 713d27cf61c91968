"""The opening handshake, client side (wsmon.ws.handshake)."""

from __future__ import annotations

import base64

import pytest

from wsmon.errors import HandshakeError
from wsmon.ws.handshake import accept_key, build_request, new_key, parse_response

KEY = "dGhlIHNhbXBsZSBub25jZQ=="  # RFC 6455 §1.3
ACCEPT = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
GOOD = (
    "HTTP/1.1 101 Switching Protocols",
    "Upgrade: websocket",
    "Connection: Upgrade",
    f"Sec-WebSocket-Accept: {ACCEPT}",
)


def head(*lines: str) -> bytes:
    return "\r\n".join(lines).encode("latin-1")


def test_accept_key_of_the_rfc_example() -> None:
    assert accept_key(KEY) == ACCEPT


def test_new_key_is_16_random_bytes_in_base64() -> None:
    keys = {new_key() for _ in range(16)}
    assert len(keys) == 16
    assert all(len(base64.b64decode(k, validate=True)) == 16 for k in keys)


@pytest.mark.parametrize(
    ("host", "resource", "headers", "subprotocols", "expected"),
    [
        (
            "example.com",
            "/",
            (),
            (),
            "GET / HTTP/1.1\r\nHost: example.com\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Key: {KEY}\r\nSec-WebSocket-Version: 13\r\n\r\n",
        ),
        (
            "[::1]:8546",
            "/ws?x=1",
            (("User-Agent", "wsmon/1"), ("Origin", "https://a.example")),
            ("v1", "v2"),
            "GET /ws?x=1 HTTP/1.1\r\nHost: [::1]:8546\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Key: {KEY}\r\nSec-WebSocket-Version: 13\r\n"
            "Sec-WebSocket-Protocol: v1, v2\r\nUser-Agent: wsmon/1\r\nOrigin: https://a.example\r\n\r\n",
        ),
    ],
)
def test_build_request(
    host: str, resource: str, headers: tuple[tuple[str, str], ...], subprotocols: tuple[str, ...], expected: str
) -> None:
    assert build_request(host, resource, KEY, headers, subprotocols) == expected.encode()


@pytest.mark.parametrize(
    ("lines", "offered", "subprotocol"),
    [
        (GOOD, (), None),
        (("HTTP/1.1 101", *GOOD[1:]), (), None),  # no reason phrase
        (("HTTP/1.0 101 OK", *GOOD[1:]), (), None),
        # Names are case-insensitive, values are token lists.
        (
            (GOOD[0], "UPGRADE: WebSocket", "connection: keep-alive, upgrade", f"sec-websocket-accept:{ACCEPT}"),
            (),
            None,
        ),
        ((*GOOD, "Sec-WebSocket-Protocol: v2"), ("v1", "v2"), "v2"),
        ((*GOOD, "Sec-WebSocket-Extensions: "), (), None),  # empty: nothing enabled
        ((*GOOD, "Server: x", "X-Thing: a: b"), (), None),
    ],
)
def test_valid_responses(lines: tuple[str, ...], offered: tuple[str, ...], subprotocol: str | None) -> None:
    response = parse_response(head(*lines), KEY, offered)
    assert (response.status, response.subprotocol) == (101, subprotocol)
    assert response.headers["sec-websocket-accept"] == ACCEPT


def test_repeated_headers_are_joined() -> None:
    response = parse_response(head(*GOOD, "Via: a", "Via: b"), KEY)
    assert response.headers["via"] == "a, b"


@pytest.mark.parametrize(
    ("lines", "offered", "message", "status"),
    [
        (("SSH-2.0-OpenSSH_9.2",), (), "the server did not answer with HTTP", None),
        (("",), (), "the server did not answer with HTTP", None),
        (("HTTP/1.1 abc Nope",), (), "the server did not answer with HTTP", None),
        (("RTSP/1.0 101 OK", *GOOD[1:]), (), "unexpected protocol in status line: 'RTSP/1.0'", None),
        (("HTTP/2 101 OK", *GOOD[1:]), (), "unexpected protocol in status line: 'HTTP/2'", None),
        ((*GOOD, "no colon here"), (), "malformed header line in the upgrade response", 101),
        (("HTTP/1.1 200 OK", "Content-Length: 0"), (), "the server answered HTTP 200 instead of 101", 200),
        (("HTTP/1.1 401 Unauthorized",), (), "the server answered HTTP 401 instead of 101", 401),
        (("HTTP/1.1 503 Busy", "bad header"), (), "malformed header line in the upgrade response", 503),
        ((GOOD[0], *GOOD[2:]), (), "the 101 answer lacks 'Upgrade: websocket'", 101),
        ((GOOD[0], "Upgrade: h2c", *GOOD[2:]), (), "the 101 answer lacks 'Upgrade: websocket'", 101),
        ((*GOOD[:2], GOOD[3]), (), "the 101 answer lacks 'Connection: Upgrade'", 101),
        (GOOD[:3], (), "wrong Sec-WebSocket-Accept in the 101 answer", 101),
        (
            (*GOOD[:3], "Sec-WebSocket-Accept: " + accept_key("other")),
            (),
            "wrong Sec-WebSocket-Accept in the 101 answer",
            101,
        ),
        (
            (*GOOD, "Sec-WebSocket-Extensions: permessage-deflate"),
            (),
            "the server enabled an extension that was not offered",
            101,
        ),
        (
            (*GOOD, "Sec-WebSocket-Protocol: v3"),
            ("v1", "v2"),
            "the server chose subprotocol 'v3', which was not offered",
            101,
        ),
        ((*GOOD, "Sec-WebSocket-Protocol: v1"), (), "the server chose subprotocol 'v1', which was not offered", 101),
    ],
)
def test_invalid_responses(lines: tuple[str, ...], offered: tuple[str, ...], message: str, status: int | None) -> None:
    with pytest.raises(HandshakeError) as caught:
        parse_response(head(*lines), KEY, offered)
    assert (str(caught.value), caught.value.status) == (message, status)
