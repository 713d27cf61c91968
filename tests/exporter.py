"""A real ``wsmon serve`` web app on a loopback port, for tests that speak HTTP to it."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass

import httpx
import uvicorn

from wsmon.config import Config
from wsmon.web import ECHO_PATH, ExporterState, create_app


@dataclass
class RunningExporter:
    state: ExporterState
    port: int
    client: httpx.AsyncClient

    @property
    def echo_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}{ECHO_PATH}"


@contextlib.asynccontextmanager
async def running_exporter(config: Config | None = None, **settings: object) -> AsyncIterator[RunningExporter]:
    state = ExporterState(config=config or Config(), **settings)  # type: ignore[arg-type]
    server = uvicorn.Server(
        uvicorn.Config(
            create_app(state), host="127.0.0.1", port=0, log_config=None, access_log=False,
            lifespan="off", ws_ping_interval=None, backlog=4096,
        )
    )
    task = asyncio.create_task(server.serve())
    while not server.started:
        await asyncio.sleep(0.01)
    port = server.servers[0].sockets[0].getsockname()[1]
    limits = httpx.Limits(max_connections=2000, max_keepalive_connections=2000)
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", limits=limits, timeout=30) as client:
        try:
            yield RunningExporter(state=state, port=port, client=client)
        finally:
            server.should_exit = True
            await task
