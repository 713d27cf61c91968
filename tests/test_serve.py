"""``wsmon serve`` as a process: signals, systemd notifications, reload, /probe by name."""

from __future__ import annotations

import asyncio
import signal
import socket
import time
from pathlib import Path

import httpx

from tests import servers
from tests.realservers import wsmon_serve
from tests.servers import MS
from tests.test_continuous import CloseRecorder, eventually


async def test_sigterm_closes_every_connection_with_1001_and_exits_0(tmp_path: Path) -> None:
    recorders = [CloseRecorder() for _ in range(3)]
    async with (
        servers.raw_server(recorders[0]) as a,
        servers.raw_server(recorders[1]) as b,
        servers.raw_server(recorders[2]) as c,
    ):
        config = tmp_path / "targets.toml"
        config.write_text(
            "".join(
                f'[[targets]]\nname = "t{i}"\nurl = "{s.url("/")}"\nmode = "persistent"\n'
                for i, s in enumerate((a, b, c))
            )
        )
        async with wsmon_serve(tmp_path, config) as wsmon:
            await eventually(lambda: all(r.connections == 1 for r in recorders), 5000 * MS)
            began = time.monotonic()
            returncode = await wsmon.stop()  # SIGTERM
            elapsed = time.monotonic() - began
    assert returncode == 0, wsmon.log()
    assert elapsed < 5000 * MS
    assert [r.close_codes for r in recorders] == [[1001]] * 3


async def test_systemd_notifications_and_sighup_reload(tmp_path: Path) -> None:
    notify_path = tmp_path / "notify.sock"
    notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    notify.bind(str(notify_path))
    notify.setblocking(False)
    loop = asyncio.get_running_loop()
    seen: list[str] = []

    async def wait_for(message: str, timeout: float = 5000 * MS) -> None:
        async def receive() -> None:
            while message not in seen:
                seen.extend((await loop.sock_recv(notify, 4096)).decode().splitlines())

        await asyncio.wait_for(receive(), timeout)

    watchdog = 200 * MS
    env = {"NOTIFY_SOCKET": str(notify_path), "WATCHDOG_USEC": str(round(watchdog * 1_000_000))}
    with notify:
        async with servers.echo_server() as echo:
            config = tmp_path / "targets.toml"
            config.write_text(f'[[targets]]\nname = "a"\nurl = "{echo.url("/")}"\nmode = "persistent"\n')
            async with wsmon_serve(tmp_path, config, env=env) as wsmon:
                process = wsmon.process
                await wait_for("READY=1")
                seen.clear()
                await wait_for("WATCHDOG=1", 10 * watchdog)
                config.write_text(config.read_text() + f'[[targets]]\nname = "b"\nurl = "{echo.url("/")}"\n')
                process.send_signal(signal.SIGHUP)
                await wait_for("RELOADING=1")
                seen.clear()
                await wait_for("READY=1")
                async with httpx.AsyncClient() as client:
                    metrics = (await client.get(f"{wsmon.base}/metrics")).text
                    assert 'wsmon_targets{mode="probe"} 1.0' in metrics
                    assert "wsmon_config_last_reload_successful 1.0" in metrics
                    config.write_text("not toml [")
                    response = await client.post(f"{wsmon.base}/-/reload")
                    assert response.status_code == 500
                    metrics = (await client.get(f"{wsmon.base}/metrics")).text
                    assert "wsmon_config_last_reload_successful 0.0" in metrics
                    assert 'wsmon_targets{mode="persistent"} 1.0' in metrics
                process.send_signal(signal.SIGTERM)
                await wait_for("STOPPING=1")
                await asyncio.wait_for(process.wait(), 10_000 * MS)
                assert process.returncode == 0


async def test_probe_by_configured_name_keeps_the_token_inside(tmp_path: Path) -> None:
    token = "TOKEN-never-in-the-tsdb-1234"
    async with servers.echo_server() as echo:
        config = tmp_path / "targets.toml"
        config.write_text(
            f'[[targets]]\nname = "node1"\nurl = "{echo.url("/")}${{NODE_TOKEN}}"\nmodule = "connect"\n'
            f'[[targets]]\nname = "vmprobe-only"\nurl = "{echo.url("/")}"\nmode = "scrape"\n'
        )
        async with (
            wsmon_serve(tmp_path, config, env={"NODE_TOKEN": token}) as wsmon,
            httpx.AsyncClient(base_url=wsmon.base) as client,
        ):
            by_name = await client.get("/probe", params={"target": "node1"})
            unknown = await client.get("/probe", params={"target": "node2"})
            scrape_only = await client.get("/probe", params={"target": "vmprobe-only"})
            metrics = await client.get("/metrics")
    assert "probe_success 1.0" in by_name.text
    assert "probe_websocket_ping_pong_success 1.0" in scrape_only.text  # probed when asked…
    assert 'target="vmprobe-only"' not in metrics.text  # …and never by wsmon's own scheduler
    assert "probe_websocket_ping_pong_success" not in by_name.text  # the target's module: connect
    assert unknown.status_code == 400
    assert unknown.text == "unknown target name 'node2': use a name from the config or a ws:// URL\n"
    for text in (by_name.text, metrics.text, wsmon.log()):
        assert token not in text
