"""The push client honours ``[[push]] tls`` (wsmon.continuous.push): CA file and server name,
against a real local HTTPS server whose certificate names only ``push.example``."""

from __future__ import annotations

import ssl
from collections.abc import AsyncIterator

import pytest

from tests.servers import Peer, Server, TLSCertificates, raw_server
from wsmon.config.push import parse_push
from wsmon.continuous.push import Pusher
from wsmon.metrics.exporter import ExporterMetrics

NAME = "push.example"  # the only name in the server's certificate; 127.0.0.1 is not in it
TOKEN = "push-tls-bearer-5a7c"


async def _no_content(peer: Peer) -> None:
    """Answer one request with 204 and close: every request makes a TLS handshake of its own."""
    request = await peer.read_request()
    await peer.reader.readexactly(int(request.headers.get("content-length", "0")))
    await peer.send(b"HTTP/1.1 204 No Content\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")


@pytest.fixture
async def https_server(tls_certificates: TLSCertificates) -> AsyncIterator[tuple[Server, list[str | None]]]:
    """A server presenting a certificate for ``push.example``, and the SNI names it was sent."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    tls_certificates.ca.issue_cert(NAME).configure_cert(context)
    names: list[str | None] = []  # None: no SNI sent

    def remember(_sock: ssl.SSLObject, name: str, _context: ssl.SSLContext) -> None:
        names.append(name)

    context.sni_callback = remember
    async with raw_server(_no_content, ssl_context=context) as server:
        yield server, names


async def _render() -> AsyncIterator[bytes]:
    yield b"up 1\n"


async def _push(server: Server, tls: dict[str, object], kind: str = "victoriametrics") -> bool:
    """Push once, then stop (a Pushgateway group is deleted on the way out)."""
    table: dict[str, object] = {
        "url": f"https://127.0.0.1:{server.port}",
        "kind": kind,
        "bearer_token": TOKEN,
        "tls": tls,
    }
    if kind == "pushgateway":
        table["delete_on_shutdown"] = True
    pusher = Pusher(parse_push(table, 1, "t.toml", env={}), _render, ExporterMetrics())
    try:
        return await pusher.push()
    finally:
        await pusher.stop(final=True)


@pytest.mark.parametrize("kind", ["victoriametrics", "pushgateway"])
async def test_server_name_is_sent_and_checked(
    https_server: tuple[Server, list[str | None]], tls_certificates: TLSCertificates, kind: str
) -> None:
    server, names = https_server
    assert await _push(server, {"ca_file": tls_certificates.ca_file, "server_name": NAME}, kind)
    # victoriametrics: the push and the final push; pushgateway: the push and the DELETE.
    assert names == [NAME, NAME]
    assert [r.headers.get("authorization") for r in server.requests] == [f"Bearer {TOKEN}"] * 2


async def test_without_server_name_the_url_host_is_checked(
    https_server: tuple[Server, list[str | None]], tls_certificates: TLSCertificates
) -> None:
    server, _ = https_server
    assert not await _push(server, {"ca_file": tls_certificates.ca_file})  # 127.0.0.1 is not push.example
    assert server.requests == []


async def test_a_wrong_server_name_fails(
    https_server: tuple[Server, list[str | None]], tls_certificates: TLSCertificates
) -> None:
    server, names = https_server
    assert not await _push(server, {"ca_file": tls_certificates.ca_file, "server_name": "other.example"})
    assert names == ["other.example"] * 2 and server.requests == []  # the push and the final push


async def test_insecure_skip_verify(https_server: tuple[Server, list[str | None]]) -> None:
    server, _ = https_server
    assert await _push(server, {"insecure_skip_verify": True})
