"""Fixtures for the real local servers of ``servers.py`` (one fresh server per test)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
import uvloop

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


def pytest_asyncio_loop_factories(
    config: pytest.Config, item: pytest.Item
) -> dict[str, Callable[[], asyncio.AbstractEventLoop]]:
    """The probe tests run on both loops: wsmon runs on uvloop, whose transports differ."""
    if item.path.name == "test_probe.py":
        return {"asyncio": asyncio.new_event_loop, "uvloop": uvloop.new_event_loop}
    return {"asyncio": asyncio.new_event_loop}
