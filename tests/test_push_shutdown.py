"""At shutdown the final push is bounded: a destination that accepts and never answers cannot
hold wsmon up for its whole push timeout."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from structlog.testing import capture_logs

from tests import servers
from tests.servers import MS
from wsmon.config.push import parse_push
from wsmon.continuous.push import FINAL_PUSH_LIMIT, Pusher
from wsmon.metrics.exporter import ExporterMetrics


async def _render() -> AsyncIterator[bytes]:
    yield b"up 1\n"


async def test_a_silent_destination_holds_the_final_push_for_the_limit_only() -> None:
    async with servers.silent_server() as silent:
        for kind, extra in (("victoriametrics", {}), ("pushgateway", {"delete_on_shutdown": True})):
            table = {"url": f"http://127.0.0.1:{silent.port}", "kind": kind, "interval": "60s", "timeout": "25s"}
            pusher = Pusher(parse_push({**table, **extra}, 1, "t.toml", env={}), _render, ExporterMetrics())
            loop = asyncio.get_running_loop()
            began = loop.time()
            with capture_logs() as logs:
                await pusher.stop(final=True)
            took = loop.time() - began
            # The push's own timeout is 25 s; the final one gives up at the limit.
            assert FINAL_PUSH_LIMIT - 100 * MS <= took < FINAL_PUSH_LIMIT + 1500 * MS, (kind, took)
            assert [e["event"] for e in logs] == ["final push gave up: no answer in time"], kind
