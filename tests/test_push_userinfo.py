"""Push credentials written as URL userinfo (``http://user:pass@vm:8428``) are basic_auth by
another name: taken out of the URL, sent as ``Authorization: Basic …``, registered as secrets,
and never logged (a destination that echoes the header in its error body included)."""

from __future__ import annotations

import base64
import contextlib
import logging
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

from tests.servers import Peer, raw_server
from wsmon.config.push import parse_push
from wsmon.continuous.push import Pusher
from wsmon.errors import ConfigError
from wsmon.logs import configure_logging
from wsmon.metrics.exporter import ExporterMetrics
from wsmon.redact import MASK, secrets

PASSWORD = "PUSHCANARY-pw-61d0e3"  # percent-encoded in the URL below ("%2D" is "-")
USERINFO = "wsmon-push:PUSHCANARY%2Dpw-61d0e3"
BASIC = base64.b64encode(f"wsmon-push:{PASSWORD}".encode()).decode()


def test_userinfo_becomes_the_authorization() -> None:
    push = parse_push({"url": f"http://{USERINFO}@vm.example:8428/"}, 1, "t.toml", env={})
    assert push.url == "http://vm.example:8428"
    assert push.authorization == f"Basic {BASIC}"
    assert push.name == "victoriametrics:vm.example:8428"
    assert secrets.scrub(f"Authorization: Basic {BASIC}; password {PASSWORD}") == (
        f"Authorization: Basic {MASK}; password {MASK}"
    )
    assert PASSWORD not in repr(push) and BASIC not in repr(push)


@pytest.mark.parametrize(
    "credentials",
    [
        {"basic_auth": {"username": "u", "password": "p"}},
        {"bearer_token": "a-bearer-token-1234"},
        {"bearer_token_file": "/nonexistent/token"},
    ],
)
def test_userinfo_and_credential_keys_are_one_too_many(credentials: dict[str, Any]) -> None:
    with pytest.raises(ConfigError) as info:
        parse_push({"url": f"http://{USERINFO}@vm.example:8428", **credentials}, 1, "t.toml", env={})
    assert str(info.value) == "t.toml: push #1: set credentials in the url or in basic_auth/bearer_token, not both"
    assert PASSWORD not in str(info.value)


@contextlib.contextmanager
def logging_at_info(capfd: pytest.CaptureFixture[str]) -> Iterator[None]:
    configure_logging(logging.INFO)
    try:
        yield
    finally:
        with capfd.disabled():  # back on the session's stderr: loggers are cached
            configure_logging(logging.WARNING)


async def test_a_failed_push_never_logs_the_userinfo_credentials(capfd: pytest.CaptureFixture[str]) -> None:
    async def echo_authorization(peer: Peer) -> None:
        request = await peer.read_request()
        await peer.reader.readexactly(int(request.headers.get("content-length", "0")))
        body = f"unauthorized: {request.headers.get('authorization')}".encode()
        await peer.send(
            b"HTTP/1.1 401 Unauthorized\r\nConnection: close\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body)
        )

    async with raw_server(echo_authorization) as server:
        push = parse_push({"url": f"http://{USERINFO}@127.0.0.1:{server.port}"}, 1, "t.toml", env={})
        pusher = Pusher(push, _render, ExporterMetrics())
        with logging_at_info(capfd):
            try:
                assert not await pusher.push()
            finally:
                await pusher.stop(final=False)
            logged = capfd.readouterr()
    for text in (logged.out, logged.err):
        assert PASSWORD not in text and BASIC not in text and "PUSHCANARY" not in text
    assert [r.headers.get("authorization") for r in server.requests] == [f"Basic {BASIC}"]
    assert "push failed" in logged.err and f"url=http://127.0.0.1:{server.port}" in logged.err


async def _render() -> AsyncIterator[bytes]:
    yield b"up 1\n"
