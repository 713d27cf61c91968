"""A dashboard change counts once it is saved: when the state file cannot be written (a
read-only or full filesystem), the API answers 503 with what failed, and nothing changes, not
now, not at the next reload, not after a restart. And wsmon refuses to start where no change
could ever be saved."""

from __future__ import annotations

import asyncio
import errno
import json
import os
import shutil
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.dashboard_app import Dashboard, dashboard
from wsmon.continuous.monitor import Monitor
from wsmon.metrics.exporter import ExporterMetrics

NEW = {"name": "added-now", "url": "ws://127.0.0.1:9/abcdefghijklmnop", "interval": "30s", "timeout": "1s"}


def break_directory(directory: Path) -> None:
    """Make the state file's directory impossible to write in, as root too: a file in its place."""
    shutil.rmtree(directory)
    directory.write_text("not a directory\n")


def saved(path: Path) -> dict[str, Any]:
    return dict(json.loads(path.read_text()))


async def refused_the_same_way(board: Dashboard, method: str, path: str, why: str, **kwargs: Any) -> None:
    response = await board.client.request(method, path, **kwargs)
    assert response.status_code == 503, (method, path, response.text)
    error = response.json()["error"]
    assert error == (
        f"the change was not saved to the state file {board.state_path} ({why}), so nothing changed: "
        "make its directory writable (or free some space) and try again"
    )


async def test_a_change_that_cannot_be_saved_is_not_applied(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    async with dashboard(tmp_path) as board:
        assert (await board.client.post("/api/targets/probe-a/pause")).status_code == 200
        before = saved(board.state_path)
        assert before["paused"] == ["probe-a"]
        break_directory(board.state_path.parent)

        why = "File exists"  # what mkdir says when a file stands where the directory was
        await refused_the_same_way(board, "POST", "/api/targets", why, json=NEW)
        await refused_the_same_way(board, "DELETE", "/api/targets/probe-b", why)
        await refused_the_same_way(board, "POST", "/api/targets/probe-b/pause", why)
        await refused_the_same_way(board, "POST", "/api/targets/probe-a/reconnect", why)  # would resume it
        assert await board.names() == ["probe-a", "probe-b"]
        assert await board.status("probe-a") == "paused"
        assert await board.status("probe-b") != "paused"
        # Not at the next reload either: the refused changes are nowhere.
        assert board.live.reload()
        assert await board.names() == ["probe-a", "probe-b"]
        assert await board.status("probe-b") != "paused"

        # The filesystem is back: the next change is saved and applied, and only it.
        board.state_path.parent.unlink()
        board.state_path.parent.mkdir()
        assert (await board.client.post("/api/targets/probe-b/pause")).status_code == 200
        assert saved(board.state_path) == {"added": [], "paused": ["probe-a", "probe-b"], "removed": []}
    output = capsys.readouterr()
    assert "Traceback" not in output.out + output.err
    # A restart sees what was saved, nothing that was refused.
    restarted = Monitor(board.live, ExporterMetrics(), state_path=board.state_path)
    assert (restarted.changes.added, sorted(restarted.changes.paused)) == ([], ["probe-a", "probe-b"])


async def test_a_full_filesystem_refuses_the_change_and_keeps_the_old_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with dashboard(tmp_path) as board:
        assert (await board.client.post("/api/targets/probe-a/pause")).status_code == 200
        before = board.state_path.read_bytes()

        def full(_: int) -> None:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

        monkeypatch.setattr(os, "fsync", full)  # what state_file calls to make the write durable
        await refused_the_same_way(board, "POST", "/api/targets", os.strerror(errno.ENOSPC), json=NEW)
        assert "added-now" not in await board.names()
        assert board.monitor.changes.added == []
        assert board.state_path.read_bytes() == before
        assert sorted(p.name for p in board.state_path.parent.iterdir()) == [board.state_path.name]  # no leftovers
        monkeypatch.undo()
        added = await board.client.post("/api/targets", json=NEW)
        assert added.status_code == 201, added.text
        assert saved(board.state_path)["added"] == [NEW]


async def wsmon_serve(*args: str) -> tuple[int, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "wsmon", "serve", "--web.listen-address", "127.0.0.1:0", *args,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    try:
        _, err = await asyncio.wait_for(process.communicate(), 20)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    assert process.returncode is not None
    return process.returncode, err.decode()


async def test_wsmon_refuses_to_start_where_no_change_could_be_saved(tmp_path: Path) -> None:
    config = tmp_path / "targets.toml"
    config.write_text('[[targets]]\nname = "a"\nurl = "ws://127.0.0.1:9/"\n')
    blocked = tmp_path / "blocked"
    blocked.write_text("a file where a directory should be\n")
    state = blocked / "targets.state.json"
    code, err = await wsmon_serve("--config", str(config), "--state.file", str(state))
    assert code == 2
    assert err == (
        f"wsmon: error: cannot write the state file {state} (File exists): "
        "dashboard changes could not be saved; choose a writable place with --state.file\n"
    )
