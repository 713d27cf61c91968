"""Fixtures for the real local servers of ``servers.py`` (one fresh server per test)."""

from __future__ import annotations

import asyncio
import contextlib
import functools
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
import uvloop
from hypothesis import settings

from tests import servers
from tests.servers import Server, TLSCertificates

# No per-example deadline: speed goals live in the benchmarks, and a loaded machine (the first,
# cold examples; a suite running beside a benchmark) must not fail a property that holds.
settings.register_profile("wsmon", deadline=None)
settings.load_profile("wsmon")


@pytest.fixture(scope="session")
def tls_certificates(tmp_path_factory: pytest.TempPathFactory) -> TLSCertificates:
    return servers.make_certificates(Path(tmp_path_factory.mktemp("tls")))


def _fresh(name: str, make: Callable[[], contextlib.AbstractAsyncContextManager[Server]]) -> Any:
    """A fixture called ``name``: a server from ``make`` for one test."""

    async def fixture() -> AsyncIterator[Server]:
        async with make() as server:
            yield server

    return pytest.fixture(fixture, name=name)


echo_server = _fresh("echo_server", servers.echo_server)
jsonrpc_server = _fresh("jsonrpc_server", functools.partial(servers.echo_server, jsonrpc=True))
silent_server = _fresh("silent_server", servers.silent_server)
dribble_server = _fresh("dribble_server", servers.dribble_server)
no_ping_server = _fresh("no_ping_server", servers.no_ping_server)
never_close_server = _fresh("never_close_server", servers.never_close_server)
abrupt_close_server = _fresh("abrupt_close_server", servers.abrupt_close_server)
bad_accept_server = _fresh("bad_accept_server", servers.bad_accept_server)
snapshot_server = _fresh("snapshot_server", servers.snapshot_server)


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
    """The probe, transport and continuous-mode tests run on both loops: wsmon runs on uvloop, whose
    transports and order of callbacks differ."""
    if item.path.name in ("test_continuous.py", "test_probe.py", "test_readers.py", "test_stamped.py"):
        return {"asyncio": asyncio.new_event_loop, "uvloop": uvloop.new_event_loop}
    return {"asyncio": asyncio.new_event_loop}
