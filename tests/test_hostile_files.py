"""Files that are hostile or wrong (nested 5,000 deep, /dev/zero, a FIFO, a directory) are
refused in one line: a reload keeps the config in force (gauge 0, ``READY=1`` again), start-up
with such a state file goes on from the config, and nothing hangs or eats the memory."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import resource
import signal
import socket
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests import servers
from tests.realservers import wsmon_serve
from wsmon.config.file import Config, load_config
from wsmon.config.live import LiveConfig
from wsmon.continuous.state_file import RuntimeChanges, load_changes
from wsmon.errors import ConfigError
from wsmon.logs import configure_logging

DEEP = 5_000
CANARY = "FILECANARY-3c2b1a0f9e"


class Gauge:
    def __init__(self) -> None:
        self.value: float | None = None

    def set(self, value: float) -> None:
        self.value = value


@contextlib.contextmanager
def logging_at_info(capfd: pytest.CaptureFixture[str]) -> Iterator[None]:
    """wsmon's logging at INFO into ``capfd``, then back to WARNING on the test session's stderr
    (loggers are cached: left on capfd's stream, later tests would write to a closed file)."""
    configure_logging(logging.INFO)
    try:
        yield
    finally:
        with capfd.disabled():
            configure_logging(logging.WARNING)


def deep_toml(kind: str) -> str:
    if kind == "array":
        return "x = " + "[" * DEEP + "]" * DEEP + "\n"
    return "x = " + "{a = " * DEEP + "1" + "}" * DEEP + "\n"


VALID = '[[targets]]\nname = "t"\nurl = "ws://127.0.0.1:9/"\n'


# --- the config file -------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["array", "inline-table"])
def test_a_deeply_nested_file_is_a_one_line_config_error(tmp_path: Path, kind: str) -> None:
    path = tmp_path / "deep.toml"
    path.write_text(deep_toml(kind))
    with pytest.raises(ConfigError) as info:
        load_config(path, env={})
    assert str(info.value) == f"{path}: tables or arrays nested too deeply; flatten the file"


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda tmp: tmp, "is a directory; give the path of a file"),
        (lambda tmp: Path("/dev/zero"), "is not a regular file (a device, FIFO or socket); point it at a file"),
        (lambda tmp: _fifo(tmp / "fifo"), "is not a regular file (a device, FIFO or socket); point it at a file"),
    ],
)
async def test_the_config_file_must_be_a_regular_file(tmp_path: Path, make: object, message: str) -> None:
    path = make(tmp_path)  # type: ignore[operator]
    code, output = await _wsmon("config", "check", str(path))  # a hang or a memory hog fails the test
    assert (code, output) == (2, f"wsmon: error: {path} {message}\n")


def _fifo(path: Path) -> Path:
    os.mkfifo(path)
    return path


async def _wsmon(*args: str, memory: int = 1 << 30, timeout: float = 20) -> tuple[int, str]:
    """``python -m wsmon …`` with its address space capped (a reader of /dev/zero fails fast
    instead of taking the machine's memory), killed after ``timeout`` seconds (a hang)."""

    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (memory, memory))

    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "wsmon",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        preexec_fn=limit,
    )
    try:
        output, _ = await asyncio.wait_for(process.communicate(), timeout)
    except TimeoutError:
        process.kill()
        await process.wait()
        pytest.fail(f"wsmon {' '.join(args)} hung")
    assert process.returncode is not None
    return process.returncode, output.decode()


async def test_config_check_of_a_deep_file_exits_2_with_one_line(tmp_path: Path) -> None:
    path = tmp_path / "deep.toml"
    path.write_text(deep_toml("array"))
    code, output = await _wsmon("config", "check", str(path))
    assert (code, output) == (2, f"wsmon: error: {path}: tables or arrays nested too deeply; flatten the file\n")


# --- url_file and the other secret files ------------------------------------------------------


@pytest.mark.parametrize("key", ["url_file", "bearer_token_file"])
@pytest.mark.parametrize("what", ["/dev/zero", "fifo", "directory", "large", "latin-1"])
async def test_secret_files_are_read_bounded_without_hanging(tmp_path: Path, key: str, what: str) -> None:
    source = {"/dev/zero": Path("/dev/zero"), "fifo": tmp_path / "fifo", "directory": tmp_path / "dir"}.get(
        what, tmp_path / "file"
    )
    if what == "fifo":
        os.mkfifo(source)  # nobody ever writes: opening it for reading used to wait for good
    elif what == "directory":
        source.mkdir()
    elif what == "large":
        source.write_bytes(b"w" * (64 * 1024 + 1))
    elif what == "latin-1":
        source.write_bytes(b"wss://h.example/caf\xe9\n")
    if key == "url_file":
        text = f'[[targets]]\nname = "t"\nurl_file = "{source}"\n'
    else:
        text = f'[modules.m]\nbearer_token_file = "{source}"\n'
    config = tmp_path / "t.toml"
    config.write_text(text)
    code, output = await _wsmon("config", "check", str(config))
    where = f"{config}: " + ("target 't'" if key == "url_file" else "module 'm'")
    expected = {
        "/dev/zero": "is not a regular file (a device, FIFO or socket); point it at a file",
        "fifo": "is not a regular file (a device, FIFO or socket); point it at a file",
        "directory": "is a directory; give the path of a file",
        "large": "is larger than 64 KiB; point it at the right file",
        "latin-1": "is not UTF-8 text",
    }[what]
    assert (code, output) == (2, f"wsmon: error: {where}: secret file {source} {expected}\n")


def test_a_state_file_cannot_name_a_url_file(tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    secret = tmp_path / "secret"
    secret.write_text(f"wss://h.example/{CANARY}\n")
    state = tmp_path / "state.json"
    state.write_text(
        json.dumps(
            {
                "added": [
                    {"name": "reads-a-file", "url_file": str(secret)},
                    {"name": "fine", "url": "ws://127.0.0.1:9/"},
                ],
                "paused": ["fine"],
            }
        )
    )
    with logging_at_info(capfd):
        changes = load_changes(state)
        logged = capfd.readouterr().err
    assert changes == RuntimeChanges(added=[{"name": "fine", "url": "ws://127.0.0.1:9/"}], paused=["fine"])
    assert "added targets with url_file are ignored" in logged and "ignored=1" in logged
    assert CANARY not in logged


# --- reloads ------------------------------------------------------------------------------------


def _live(tmp_path: Path) -> tuple[LiveConfig, Path, Gauge]:
    path = tmp_path / "targets.toml"
    path.write_text(VALID)
    gauge = Gauge()
    return LiveConfig(load_config(path, env={}), path=str(path), reload_ok=gauge), path, gauge


def test_a_reload_of_a_deep_file_keeps_the_config_in_force(tmp_path: Path) -> None:
    live, path, gauge = _live(tmp_path)
    before = live.current
    path.write_text(deep_toml("array"))
    assert live.reload() is False
    assert live.current is before and gauge.value == 0


@pytest.mark.parametrize(
    "error",
    [
        RecursionError("maximum recursion depth exceeded"),
        MemoryError(),
        OSError(5, "Input/output error"),
        UnicodeDecodeError("utf-8", b"\xe9", 0, 1, "invalid continuation byte"),
        RuntimeError(f"quoting {CANARY}"),
    ],
    ids=lambda e: type(e).__name__,
)
def test_a_reload_refuses_whatever_goes_wrong(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str], error: BaseException
) -> None:
    live, _, gauge = _live(tmp_path)
    before = live.current

    def fail(*_: object, **__: object) -> Config:
        raise error

    monkeypatch.setattr("wsmon.config.live.load_config", fail)
    with logging_at_info(capfd):
        assert live.reload() is False
        logged = capfd.readouterr().err
    assert live.current is before and gauge.value == 0
    lines = logged.splitlines()
    assert len(lines) == 1 and "config reload failed; the previous config keeps running" in lines[0]
    assert CANARY not in logged


def test_a_failing_listener_does_not_escape_a_reload(tmp_path: Path) -> None:
    live, path, gauge = _live(tmp_path)

    def broken(_: Config) -> None:
        raise RuntimeError("listener bug")

    live.on_change(broken)
    path.write_text(VALID.replace('"t"', '"u"'))
    assert live.reload() is False
    assert gauge.value == 0


# --- the process: SIGHUP, POST /-/reload, systemd, start-up with a hostile state file ----------


async def test_sighup_and_post_reload_of_a_deep_file_are_clean_refusals(tmp_path: Path) -> None:
    notify_path = tmp_path / "notify.sock"
    notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    notify.bind(str(notify_path))
    notify.setblocking(False)
    loop = asyncio.get_running_loop()
    seen: list[str] = []

    async def wait_for(message: str) -> None:
        async def receive() -> None:
            while message not in seen:
                seen.extend((await loop.sock_recv(notify, 4096)).decode().splitlines())

        await asyncio.wait_for(receive(), 10)

    with notify:
        async with servers.echo_server() as echo:
            config = tmp_path / "targets.toml"
            config.write_text(f'[[targets]]\nname = "a"\nurl = "{echo.url("/")}"\nmode = "persistent"\n')
            async with wsmon_serve(tmp_path, config, env={"NOTIFY_SOCKET": str(notify_path)}) as wsmon:
                await wait_for("READY=1")
                seen.clear()
                config.write_text(deep_toml("array"))
                wsmon.process.send_signal(signal.SIGHUP)
                await wait_for("RELOADING=1")
                await wait_for("READY=1")
                assert seen.index("READY=1") > seen.index("RELOADING=1")
                async with httpx.AsyncClient(base_url=wsmon.base) as client:
                    assert "wsmon_config_last_reload_successful 0.0" in (await client.get("/metrics")).text
                    config.write_text(VALID)  # a good reload sets the gauge back to 1
                    assert (await client.post("/-/reload")).text == "config reloaded\n"
                    assert "wsmon_config_last_reload_successful 1.0" in (await client.get("/metrics")).text
                    config.write_text(deep_toml("inline-table"))
                    response = await client.post("/-/reload")
                    assert "config reload failed; the previous config keeps running" in response.text
                    metrics = (await client.get("/metrics")).text
                    assert "wsmon_config_last_reload_successful 0.0" in metrics
                    assert 'wsmon_targets{mode="probe"} 1.0' in metrics  # VALID's target still runs
                assert await wsmon.stop() == 0
            log = wsmon.log()
    assert "Traceback" not in log and "Exception in callback" not in log
    assert log.count("config reload failed") == 2
    assert log.count("nested too deeply") == 2


async def test_start_up_with_a_deeply_nested_state_file_goes_on_from_the_config(tmp_path: Path) -> None:
    state = tmp_path / "state.json"
    state.write_text("[" * 200_000 + "]" * 200_000)
    config = tmp_path / "targets.toml"
    config.write_text(VALID)
    async with wsmon_serve(tmp_path, config, "--state.file", str(state)) as wsmon:
        async with httpx.AsyncClient(base_url=wsmon.base) as client:
            assert 'wsmon_targets{mode="probe"} 1.0' in (await client.get("/metrics")).text
        assert await wsmon.stop() == 0
        log = wsmon.log()
    assert "state file unreadable; moved aside" in log and "Traceback" not in log
    assert not state.exists() and (tmp_path / "state.json.unreadable").exists()
