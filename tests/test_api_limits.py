"""The targets API takes small, sane bodies only: size, labels, name lengths, durations; and a
body must arrive in time. Durations are bounded wherever they are read (API, file, flags)."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from tests.dashboard_app import dashboard
from tests.servers import MS
from wsmon.config.file import parse_config
from wsmon.errors import ConfigError
from wsmon.web.limits import WebLimits

URL = "ws://127.0.0.1:9/abcdefghijklmnop"
TOO_LONG = "duration '999999999999h' is too long: the longest wsmon accepts is 168h (a week)"


async def test_a_body_larger_than_64_kib_is_refused_unread(tmp_path: Path) -> None:
    huge = {"name": "huge", "url": URL, "labels": {f"label_{i}": "value" for i in range(50_000)}}
    async with dashboard(tmp_path) as board:
        response = await board.client.post("/api/targets", json=huge)  # ~1.2 MB, Content-Length says so
        assert response.status_code == 413
        assert response.json() == {"error": "the request body is larger than 65536 bytes"}

        async def chunked() -> AsyncIterator[bytes]:  # no Content-Length: counted as it comes
            yield b'{"name": "huge", "url": "' + URL.encode() + b'", "labels": {'
            for i in range(10_000):
                yield f'"label_{i}": "value",'.encode()

        response = await board.client.post("/api/targets", content=chunked())
        assert response.status_code == 413
        assert "huge" not in await board.names()


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"labels": {f"l{i}": "v" for i in range(100)}}, "a target takes at most 32 labels, not 100"),
        ({"name": "n" * 10_000}, "name is longer than 128 characters"),
        ({"module": "m" * 200}, "module is longer than 128 characters"),
        ({"url": URL + "x" * 9000}, "url is longer than 8192 characters"),
        ({"labels": {"l" * 200: "v"}}, "a label name is longer than 128 characters"),
        ({"labels": {"team": "v" * 2000}}, "label 'team': its value is longer than 1024 characters"),
        ({"interval": "999999999999h"}, f"dashboard: target 'bounded': interval: {TOO_LONG}"),
        ({"timeout": "999999999999h", "mode": "persistent"}, f"dashboard: target 'bounded': timeout: {TOO_LONG}"),
    ],
)
async def test_bodies_beyond_the_bounds_get_a_clear_400(tmp_path: Path, change: dict[str, Any], message: str) -> None:
    async with dashboard(tmp_path) as board:
        response = await board.client.post("/api/targets", json={"name": "bounded", "url": URL, **change})
        assert response.status_code == 400, response.text
        assert response.json() == {"error": message}
        assert await board.names() == ["probe-a", "probe-b"]


async def test_within_the_bounds_is_fine(tmp_path: Path) -> None:
    labels = {f"l{i}": "v" * 1024 for i in range(32)}
    async with dashboard(tmp_path) as board:
        response = await board.client.post(
            "/api/targets", json={"name": "n" * 128, "url": URL, "labels": labels, "interval": "168h"}
        )
        assert response.status_code == 201, response.text


async def test_a_body_that_does_not_arrive_in_time_is_answered_408(tmp_path: Path) -> None:
    stalled = asyncio.Event()

    async def slow() -> AsyncIterator[bytes]:
        yield b'{"name": "slow", '
        stalled.set()
        await asyncio.sleep(3600)  # the rest never comes
        yield b"}"

    async with dashboard(tmp_path, WebLimits(read_timeout=300 * MS)) as board:
        async with asyncio.timeout(5):
            response = await board.client.post("/api/targets", content=slow(), headers={"Content-Length": "40"})
        assert stalled.is_set()
        assert response.status_code == 408
        assert response.json() == {"error": f"the request body did not arrive within {300 * MS:g}s"}


def test_the_config_file_bounds_durations_too() -> None:
    table = {"settings": {"interval": "999999999999h"}}
    with pytest.raises(ConfigError) as caught:
        parse_config(table, "t.toml")
    assert str(caught.value) == f"t.toml: [settings]: interval: {TOO_LONG}"
    with pytest.raises(ConfigError) as caught:
        parse_config({"modules": {"m": {"timeout": "169h"}}}, "t.toml")
    assert "duration '169h' is too long" in str(caught.value)
    assert parse_config({"settings": {"window": "168h"}}, "t.toml").settings.window == 168 * 3600


async def test_flags_bound_durations_too() -> None:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "wsmon", "check", "ws://127.0.0.1:9/", "--timeout", "999999999999h",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    _, err = await process.communicate()
    assert process.returncode == 2
    assert "too long: the longest wsmon accepts is 168h" in err.decode()
