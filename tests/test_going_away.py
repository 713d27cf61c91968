"""Every open WebSocket gets its close frame (1001, going away) when wsmon stops, even a probe's
whose upgrade has just completed: cancelled probes leave politely, not by dropping the TCP."""

from __future__ import annotations

import asyncio
from pathlib import Path

from tests import servers
from tests.realservers import wsmon_serve
from tests.servers import MS, Peer
from wsmon.probe.module import BUILTIN_MODULES
from wsmon.probe.prober import probe
from wsmon.ws.frames import OP_CLOSE, OP_PING, close_payload


class Silent:
    """Upgrades, never answers a ping, and records what the client sends."""

    def __init__(self) -> None:
        self.pinged = asyncio.Event()
        self.closes: list[bytes] = []

    async def __call__(self, peer: Peer) -> None:
        await peer.upgrade()
        while (frame := await peer.read_frame()) is not None:
            opcode, payload = frame
            if opcode == OP_PING:
                self.pinged.set()
            elif opcode == OP_CLOSE:
                self.closes.append(payload)


async def test_a_cancelled_probe_sends_1001() -> None:
    silent = Silent()
    async with servers.raw_server(silent) as server:
        running = asyncio.create_task(probe(server.url("/"), BUILTIN_MODULES["ping"], 5000 * MS))
        await asyncio.wait_for(silent.pinged.wait(), 2000 * MS)
        running.cancel()
        await asyncio.gather(running, return_exceptions=True)
        for _ in range(100):
            if silent.closes:
                break
            await asyncio.sleep(10 * MS)
    assert silent.closes == [close_payload(1001)]


async def test_sigterm_closes_a_running_probe_with_1001(tmp_path: Path) -> None:
    silent = Silent()
    async with servers.raw_server(silent) as server:
        config = tmp_path / "targets.toml"
        config.write_text(
            f'[[targets]]\nname = "hanging"\nurl = "{server.url("/")}"\n'
            f'interval = "{servers.go_duration(4000 * MS)}"\ntimeout = "{servers.go_duration(3000 * MS)}"\n'
        )
        async with wsmon_serve(tmp_path, config) as wsmon:
            await asyncio.wait_for(silent.pinged.wait(), 6000 * MS)
            assert await wsmon.stop() == 0
        for _ in range(100):
            if silent.closes:
                break
            await asyncio.sleep(10 * MS)
    assert silent.closes == [close_payload(1001)]
