"""A running Monitor behind the web app, in-process, with an admin bearer token: for tests of
the targets API that need no separate wsmon process."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import httpx

from tests import servers
from wsmon.config.file import load_config
from wsmon.config.live import LiveConfig
from wsmon.continuous.monitor import Monitor
from wsmon.metrics.exporter import ExporterMetrics
from wsmon.web.app import ExporterState, create_app
from wsmon.web.limits import WebLimits

ADMIN_TOKEN = "dashboard-admin-token-0123456789"


@dataclass
class Dashboard:
    client: httpx.AsyncClient
    monitor: Monitor
    live: LiveConfig
    config_path: Path
    state_path: Path

    async def names(self) -> list[str]:
        return [t["name"] for t in (await self.client.get("/api/targets?sort=name")).json()["targets"]]

    async def status(self, name: str) -> str:
        return str((await self.client.get(f"/api/targets/{name}")).json()["status"])


@contextlib.asynccontextmanager
async def dashboard(
    tmp_path: Path,
    limits: WebLimits | None = None,
    web: str = "",
    names: tuple[str, ...] = ("probe-a", "probe-b"),
) -> AsyncIterator[Dashboard]:
    """Targets ``probe-a`` and ``probe-b`` (nobody listens: they fail, slowly), or ``names``;
    the state file in ``tmp_path/state/``; ``web``: more ``[web]`` lines."""
    token = tmp_path / "admin.token"
    token.write_text(ADMIN_TOKEN + "\n")
    nowhere = f"ws://127.0.0.1:{servers.refused_port()}/"
    config_path = tmp_path / "targets.toml"
    config_path.write_text(
        "".join(
            f'[[targets]]\nname = "{name}"\nurl = "{nowhere}"\ninterval = "30s"\ntimeout = "1s"\n' for name in names
        )
        + f'[web]\n{web}[web.tokens.ci]\ntoken_file = "{token}"\nrole = "admin"\n'
    )
    live = LiveConfig(load_config(config_path), path=str(config_path))
    metrics = ExporterMetrics()
    state_path = tmp_path / "state" / "targets.state.json"
    monitor = Monitor(live, metrics, state_path=state_path)
    monitor.start()
    state = ExporterState(live=live, metrics=metrics, monitor=monitor, limits=limits or WebLimits())
    transport = httpx.ASGITransport(app=create_app(state))
    headers = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://wsmon.test", headers=headers) as client:
            yield Dashboard(client, monitor, live, config_path, state_path)
    finally:
        await monitor.stop()
