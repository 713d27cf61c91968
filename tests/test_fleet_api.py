"""The fleet's API over HTTP (in-process app, a Store filled by hand): one page at a time with the
totals, a summary, one target's detail, conditional requests, one-line 400s, no secret."""

from __future__ import annotations

from pathlib import Path
from time import perf_counter

import httpx

from tests.dashboard_app import dashboard
from wsmon.config.file import Mode, Target
from wsmon.continuous.store import Store, TargetState
from wsmon.probe.module import BUILTIN_MODULES
from wsmon.probe.reasons import Reason
from wsmon.redact import secrets

CANARY = "fl33t-canary-token-7d1c"


def fill(store: Store, count: int, broken: tuple[int, ...] = ()) -> list[TargetState]:
    """``count`` persistent targets n000…, connected with a round trip, but ``broken`` ones
    (refused, with an error naming the canary, which is a configured secret)."""
    secrets.add([CANARY])
    states = []
    for i in range(count):
        target = Target(
            name=f"n{i:03d}",
            url=f"wss://node{i}.example.com/v3/{CANARY}",
            module=BUILTIN_MODULES["ping"],
            mode=Mode.PERSISTENT,
            labels=(("region", ("eu", "us")[i % 2]),),
        )
        state = store.add(target, window=300.0, sample_interval=1.0)
        state.record_connecting()
        if i in broken:
            state.record_failure(Reason.REFUSED, f"connect failed for /v3/{CANARY}")
            state.record_disconnected()
        else:
            state.record_connected(0.002)
            state.record_pong(0.001 + i / 1e6, perf_counter())  # the clock the API reads windows at
        states.append(state)
    return states


def names(response: httpx.Response) -> list[str]:
    return [t["name"] for t in response.json()["targets"]]


async def test_one_page_at_a_time_problems_first_with_the_totals(tmp_path: Path) -> None:
    async with dashboard(tmp_path, names=()) as board:
        fill(board.monitor.store, 120, broken=(7, 64, 99))
        client = board.client
        first = await client.get("/api/targets")
        assert first.status_code == 200
        page = first.json()
        assert (page["total"], page["matched"], page["offset"], page["limit"]) == (120, 120, 0, 50)
        assert names(first)[:4] == ["n007", "n064", "n099", "n000"]
        assert len(page["targets"]) == 50
        assert page["summary"]["total"] == 120 and page["summary"]["disconnected"] == 3
        row = page["targets"][0]
        assert row["url"] == "wss://node7.example.com/****"
        assert row["last_error"]["reason"] == "refused"
        assert row["last_error"]["message"] == "connect failed for /v3/****"
        assert row["labels"] == {"region": "us"}

        last = await client.get("/api/targets", params={"offset": 100})
        assert len(last.json()["targets"]) == 20 and names(last)[-1] == "n119"
        found = await client.get("/api/targets", params={"q": "node64.example"})
        assert names(found) == ["n064"] and found.json()["matched"] == 1
        eu_down = await client.get("/api/targets", params={"status": "disconnected", "q": "region=eu"})
        assert names(eu_down) == ["n064"]
        by_latency = await client.get("/api/targets", params={"sort": "latency", "limit": 2})
        assert names(by_latency) == ["n119", "n118"]
        beyond = await client.get("/api/targets", params={"offset": 5000})
        assert beyond.json()["targets"] == [] and beyond.json()["matched"] == 120

        bad = await client.get("/api/targets", params={"limit": 501})
        assert bad.status_code == 400
        assert bad.json() == {"error": "limit must be a whole number from 1 to 500, not '501'"}
        for body in (first, last, found, eu_down):
            assert CANARY not in body.text


async def test_an_unchanged_page_is_a_bodiless_304(tmp_path: Path) -> None:
    async with dashboard(tmp_path, names=()) as board:
        states = fill(board.monitor.store, 80, broken=(3,))
        client = board.client

        async def again(tag: str, **params: str | int) -> httpx.Response:
            return await client.get("/api/targets", params=params, headers={"If-None-Match": tag})

        first = await client.get("/api/targets")
        tag = first.headers["etag"]
        assert tag.startswith('W/"') and first.headers["cache-control"] == "no-cache, private"
        unchanged = await again(tag)
        assert (unchanged.status_code, unchanged.content, unchanged.headers["etag"]) == (304, b"", tag)
        states[70].record_pong(0.004, perf_counter())  # not on the first page
        assert (await again(tag)).status_code == 304
        states[10].record_pong(0.004, perf_counter())  # on it: its latency changed
        changed = await again(tag)
        assert changed.status_code == 200 and changed.headers["etag"] != tag
        tag = changed.headers["etag"]
        states[70].record_disconnected()  # a status change anywhere: the totals (and the order)
        moved = await again(tag)
        assert moved.status_code == 200 and names(moved)[:2] == ["n003", "n070"]
        assert (await again(moved.headers["etag"], limit=10)).status_code == 200  # another page


async def test_summary_counts_worst_offenders_changes_and_304(tmp_path: Path) -> None:
    async with dashboard(tmp_path, names=()) as board:
        states = fill(board.monitor.store, 30, broken=(4, 20))
        states[20].health_since -= 600
        client = board.client
        response = await client.get("/api/summary")
        summary = response.json()
        assert summary["counts"]["total"] == 30
        assert (summary["counts"]["connected"], summary["counts"]["disconnected"], summary["problems"]) == (28, 2, 2)
        assert summary["latency"]["targets"] == 28
        assert [w["name"] for w in summary["worst"]] == ["n020", "n004"]
        assert summary["worst"][0]["last_error"]["message"] == "connect failed for /v3/****"
        assert CANARY not in response.text
        version = summary["version"]
        same = await client.get(f"/api/summary?since={version}", headers={"If-None-Match": response.headers["etag"]})
        assert same.status_code == 200 and same.json()["changed"] == 0  # another question: "since"
        tag = same.headers["etag"]
        assert (await client.get(f"/api/summary?since={version}", headers={"If-None-Match": tag})).status_code == 304
        states[4].record_connecting()
        states[4].record_connected(0.001)
        states[5].record_disconnected()
        changed = await client.get(f"/api/summary?since={version}", headers={"If-None-Match": tag})
        assert changed.status_code == 200 and changed.json()["changed"] == 2
        for bad, message in (
            ("since=yesterday", "since must be a version from an earlier answer (a whole number), not 'yesterday'"),
            ("colour=red", "unknown parameter 'colour': use since"),
        ):
            refused = await client.get(f"/api/summary?{bad}")
            assert refused.status_code == 400 and refused.json() == {"error": message}


async def test_one_target_in_detail(tmp_path: Path) -> None:
    async with dashboard(tmp_path, names=()) as board:
        states = fill(board.monitor.store, 3, broken=(1,))
        for i in range(3):
            states[1].record_failure(Reason.TIMEOUT, f"timed out during upgrade ({i})")
        response = await board.client.get("/api/targets/n001")
        detail = response.json()
        assert detail["status"] == "disconnected"
        assert [e["reason"] for e in detail["errors"]] == ["timeout", "timeout", "timeout", "refused"]
        assert detail["errors"][0]["message"] == "timed out during upgrade (2)"
        assert detail["errors"][-1]["message"] == "connect failed for /v3/****"
        assert detail["failures"] == {"refused": 1, "timeout": 3}
        assert detail["url"] == "wss://node1.example.com/****" and detail["labels"] == {"region": "us"}
        assert CANARY not in response.text
        tag = response.headers["etag"]
        assert (await board.client.get("/api/targets/n001", headers={"If-None-Match": tag})).status_code == 304
        up = (await board.client.get("/api/targets/n002")).json()
        assert (up["status"], up["history_ms"], up["samples"], up["errors"]) == ("connected", [1.002], 1, [])
        missing = await board.client.get("/api/targets/nobody")
        assert missing.status_code == 404 and missing.json() == {"error": "no target named 'nobody'"}
