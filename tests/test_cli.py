"""``wsmon check`` and ``wsmon config check`` as a user runs them: exit codes and output."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from pathlib import Path

from tests.exporter import running_exporter
from tests.servers import MS, go_duration

OUTPUT_TIMEOUT = 10_000 * MS  # for a line wsmon check prints


async def wsmon(*args: str) -> tuple[int, str, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "wsmon", *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    out, err = await process.communicate()
    return await process.wait(), out.decode(), err.decode()


async def test_check_up_prints_phases_and_exits_0() -> None:
    async with running_exporter() as exporter:
        code, out, _ = await wsmon("check", exporter.echo_url)
    assert code == 0
    lines = out.splitlines()
    assert lines[0] == f"PROBE ws://127.0.0.1:{exporter.port}/**** (module ping, timeout 10s)"
    assert [line.split()[0] for line in lines[1:-1]] == ["resolve", "connect", "upgrade", "ping", "close"]
    assert lines[-1].startswith("UP in ")


async def test_check_down_exits_1_with_reason(unused_tcp_port: int) -> None:
    code, out, _ = await wsmon("check", f"ws://127.0.0.1:{unused_tcp_port}/", "--timeout", go_duration(2000 * MS))
    assert code == 1
    assert out.splitlines()[-1].startswith("DOWN (refused) after ")


async def test_check_no_ping_against_echo_and_json() -> None:
    async with running_exporter() as exporter:
        code, out, _ = await wsmon("check", exporter.echo_url, "--no-ping", "--json")
    assert code == 0
    answer = json.loads(out)
    assert answer["success"] is True
    assert answer["module"] == "ping"
    assert answer["ping"] is None
    assert set(answer["phases"]) == {"resolve", "connect", "upgrade", "close"}


async def test_check_count_prints_a_line_each_then_a_summary() -> None:
    async with running_exporter() as exporter:
        interval = go_duration(10 * MS)
        code, out, _ = await wsmon("check", exporter.echo_url, "--count", "3", "--interval", interval, "--pings", "2")
    assert code == 0
    lines = out.splitlines()
    assert [line.split(":")[0] for line in lines[:3]] == ["1", "2", "3"]
    assert all(" UP " in line for line in lines[:3])
    assert lines[3].endswith("wsmon statistics ---")
    assert lines[4].startswith("3 probes, 3 up, 0% down")
    assert lines[5].startswith("ping rtt min/avg/max/mdev = ")


async def test_check_ctrl_c_prints_the_summary_so_far() -> None:
    async with running_exporter() as exporter:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "wsmon",
            "check",
            exporter.echo_url,
            "--count",
            "1000",
            "--interval",
            go_duration(50 * MS),
            stdout=asyncio.subprocess.PIPE,
        )
        assert process.stdout is not None
        first = await asyncio.wait_for(process.stdout.readline(), OUTPUT_TIMEOUT)
        assert first.startswith(b"1: UP")
        process.send_signal(signal.SIGINT)
        rest = (await asyncio.wait_for(process.stdout.read(), OUTPUT_TIMEOUT)).decode()
        code = await process.wait()
    assert "wsmon statistics" in rest
    assert code == 0  # every probe done so far was up


async def test_usage_errors_exit_2_with_one_line(tmp_path: Path) -> None:
    cases = [
        (["check", "http://x/"], "wsmon: error: unsupported scheme http://: the target must be a ws:// or wss:// URL"),
        (
            ["check", "ws://x/", "--module", "nope"],
            "wsmon: error: unknown module 'nope': known modules are connect, ping",
        ),
        (["check", "ws://x/", "--config", str(tmp_path / "missing.toml")], "no such file"),
        (["check", "ws://x/", "--timeout", "10"], "invalid duration '10'"),
        (["check", "ws://x/", "-H", "NoColon"], "wsmon: error: --header #1 has no 'Name:' before its value"),
    ]
    for args, expected in cases:
        code, out, err = await wsmon(*args)
        assert code == 2, args
        assert expected in err, (args, err)
        assert out == ""


async def test_config_check(tmp_path: Path) -> None:
    good = tmp_path / "good.toml"
    good.write_text('[modules.eth]\nping = false\n[[modules.eth.steps]]\nsend = "x"\nexpect = "y"\n')
    code, out, _ = await wsmon("config", "check", str(good))
    assert (code, out) == (0, f"{good}: valid (3 modules, 0 targets: 0 probe, 0 persistent, 0 scrape)\n")
    bad = tmp_path / "bad.toml"
    bad.write_text("[modules.eth]\npingg = false\n")
    code, _, err = await wsmon("config", "check", str(bad))
    assert code == 2
    assert err.startswith(f"wsmon: error: {bad}: module 'eth': unknown key 'pingg'")
    assert len(err.splitlines()) == 1


ROOT = Path(__file__).resolve().parent.parent


async def test_bundled_targets_toml_is_valid() -> None:
    code, out, _ = await wsmon("config", "check", str(ROOT / "targets.toml"))
    assert code == 0, out


def test_help_explains_every_command() -> None:
    env = {**os.environ, "COLUMNS": "200"}
    import subprocess

    for args in (["--help"], ["serve", "--help"], ["check", "--help"], ["config", "check", "--help"]):
        result = subprocess.run(
            [sys.executable, "-m", "wsmon", *args], capture_output=True, text=True, env=env, check=True
        )
        assert "Usage:" in result.stdout
    serve_help = subprocess.run(
        [sys.executable, "-m", "wsmon", "serve", "--help"], capture_output=True, text=True, env=env, check=True
    ).stdout
    for flag in (
        "--web.listen-address",
        "--web.telemetry-path",
        "--web.probe-path",
        "--timeout",
        "--ping.interval",
        "--debug",
        "--config",
    ):
        assert flag in serve_help


CANARY = "CLICANARY-4f3e2d1c0b"


async def test_usage_errors_never_echo_a_secret() -> None:
    """A typo in -H, or userinfo read as a scheme, used to print the token in the error."""
    cases = [
        (["check", "ws://x/", "-H", "Accept: x", "-H", f"Authorization=Bearer {CANARY}"], "--header #2 has no 'Name:'"),
        (["check", "ws://x/", "-H", f"Bearer {CANARY}"], "--header #1 has no 'Name:'"),
        (["check", f"alice:{CANARY}@node.example:8546/ws"], "unsupported scheme: the target must be a ws://"),
        (["check", f"{CANARY}:@node.example/ws"], "unsupported scheme: the target must be a ws://"),
        (["check", f"http://alice:{CANARY}@node.example/"], "unsupported scheme http://: the target must be"),
        (["check", f"ws://alice:{CANARY}@node.example:bad/"], "unparsable target URL (invalid port)"),
        (["check", f"ws://alice:{CANARY}@no\\de.example/"], "the target URL holds a backslash"),
    ]
    for args, expected in cases:
        code, out, err = await wsmon(*args)
        assert CANARY not in out + err, args
        assert code == 2, args
        assert err.startswith("wsmon: error: ") and expected in err and len(err.splitlines()) == 1, (args, err)
