"""A real ``wsmon serve`` web app on a loopback port, for tests that speak HTTP to it."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace

import httpx
import uvicorn

from tests.servers import MS
from wsmon.config.file import Config
from wsmon.config.live import LiveConfig
from wsmon.web.app import ECHO_PATH, ExporterState, create_app
from wsmon.web.limits import WebLimits


@dataclass
class RunningExporter:
    state: ExporterState
    port: int
    client: httpx.AsyncClient

    @property
    def echo_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}{ECHO_PATH}"

    async def get_body(self, path: str) -> str:
        """GET on a connection of its own; httpx's pool slows down quadratically past ~100 in flight."""
        reader, writer = await asyncio.open_connection("127.0.0.1", self.port)
        try:
            writer.write(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n".encode())
            response = await reader.read()
        finally:
            writer.close()
            await writer.wait_closed()
        head, _, body = response.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200 "), head
        return body.decode()


@contextlib.asynccontextmanager
async def running_exporter(
    config: Config | None = None,
    timeout: float | None = None,
    *,
    debug: bool = False,
    limits: WebLimits | None = None,
) -> AsyncIterator[RunningExporter]:
    """``create_app`` served by uvicorn on a free loopback port, with a client for it.

    ``timeout`` replaces the config's ``[settings] timeout`` (a multiple of ``MS``); ``debug``
    is ``--debug``; ``limits`` the ``--web.*`` bounds (default: none).
    """
    config = config or Config()
    if timeout is not None:
        config = replace(config, settings=replace(config.settings, timeout=timeout))
    state = ExporterState(live=LiveConfig(config), debug=debug, limits=limits or WebLimits())
    server = uvicorn.Server(
        uvicorn.Config(
            create_app(state),
            host="127.0.0.1",
            port=0,
            log_config=None,
            access_log=False,
            lifespan="off",
            ws_ping_interval=None,
            backlog=4096,
        )
    )
    task = asyncio.create_task(server.serve())
    while not server.started:  # noqa: ASYNC110 - uvicorn offers no event to wait on
        await asyncio.sleep(10 * MS)
    port = server.servers[0].sockets[0].getsockname()[1]
    pool = httpx.Limits(max_connections=2000, max_keepalive_connections=2000)
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", limits=pool, timeout=30_000 * MS) as client:
        try:
            yield RunningExporter(state=state, port=port, client=client)
        finally:
            server.should_exit = True
            await task
