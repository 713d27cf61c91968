"""A fleet of persistent targets for ``wsmon serve``: its config, and waiting until it is all
connected. Shared by tests/test_dashboard_fleet.py and bench/dashboard_api.py.

``count`` targets ``node-00000``… connect to one loopback server (their URLs carry a token from
``${<canary_var>}``), labelled ``region`` (eu, us, ap in turn) and ``chain`` (eth, sol); one more,
``edge-down``, points at a port nobody listens on.
"""

from __future__ import annotations

import time
from pathlib import Path

import httpx

from tests.realservers import WsmonProcess, web_user
from tests.servers import refused_port

__all__ = ["BROKEN", "REGIONS", "fleet_config", "wait_until_connected"]

REGIONS = ("eu", "us", "ap")
BROKEN = "edge-down"


def fleet_config(
    path: Path, *, count: int, port: int, ping_interval: str, login: tuple[str, str], canary_var: str
) -> Path:
    url = f"ws://127.0.0.1:{port}"
    targets = "".join(
        f'[[targets]]\nname = "node-{i:05d}"\nurl = "{url}/node-{i:05d}/${{{canary_var}}}"\nmode = "persistent"\n'
        f'labels = {{ region = "{REGIONS[i % 3]}", chain = "{("eth", "sol")[i % 2]}" }}\n'
        for i in range(count)
    )
    path.write_text(
        f"""[settings]
ping_interval = "{ping_interval}"

{targets}
[[targets]]
name = "{BROKEN}"
url = "ws://127.0.0.1:{refused_port()}/${{{canary_var}}}"
mode = "persistent"
labels = {{ region = "eu", chain = "eth" }}

{web_user(*login, "admin")}"""
    )
    return path


def wait_until_connected(wsmon: WsmonProcess, count: int, login: tuple[str, str], within: float) -> dict[str, int]:
    """Poll ``/api/summary`` until ``count`` targets are connected and one disconnected; the
    counts last seen (the caller checks them: they are what it got by ``within`` seconds)."""
    deadline = time.monotonic() + within
    counts: dict[str, int] = {}
    with httpx.Client(base_url=wsmon.base, auth=login, trust_env=False, timeout=within) as client:
        while time.monotonic() < deadline:
            counts = client.get("/api/summary").json()["counts"]
            if counts["connected"] == count and counts["disconnected"] == 1:
                break
            time.sleep(min(1.0, within / 100))
    return counts
