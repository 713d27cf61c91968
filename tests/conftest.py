"""Fixtures for the real local servers of ``servers.py`` (one fresh server per test)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests import servers
from tests.servers import Server, TLSCertificates


@pytest.fixture(scope="session")
def tls_certificates(tmp_path_factory: pytest.TempPathFactory) -> TLSCertificates:
    return servers.make_certificates(Path(tmp_path_factory.mktemp("tls")))


@pytest.fixture
async def echo_server() -> AsyncIterator[Server]:
    async with servers.echo_server() as server:
        yield server


@pytest.fixture
async def jsonrpc_server() -> AsyncIterator[Server]:
    async with servers.echo_server(jsonrpc=True) as server:
        yield server


@pytest.fixture
async def silent_server() -> AsyncIterator[Server]:
    async with servers.silent_server() as server:
        yield server


@pytest.fixture
async def dribble_server() -> AsyncIterator[Server]:
    async with servers.dribble_server() as server:
        yield server


@pytest.fixture
async def no_ping_server() -> AsyncIterator[Server]:
    async with servers.no_ping_server() as server:
        yield server


@pytest.fixture
async def never_close_server() -> AsyncIterator[Server]:
    async with servers.never_close_server() as server:
        yield server


@pytest.fixture
async def abrupt_close_server() -> AsyncIterator[Server]:
    async with servers.abrupt_close_server() as server:
        yield server


@pytest.fixture
async def bad_accept_server() -> AsyncIterator[Server]:
    async with servers.bad_accept_server() as server:
        yield server


@pytest.fixture
async def snapshot_server() -> AsyncIterator[Server]:
    async with servers.snapshot_server() as server:
        yield server


@pytest.fixture
async def tls_server(tls_certificates: TLSCertificates) -> AsyncIterator[Server]:
    async with servers.tls_server(tls_certificates) as server:
        yield server


@pytest.fixture
def refused_url() -> str:
    return f"ws://{servers.HOST}:{servers.refused_port()}/"
