"""The JSON API behind the dashboard (and usable on its own): ``/api/…``.

| method | path | what |
| --- | --- | --- |
| GET | /api/session | who you are, your role, the CSRF token for changes |
| GET | /api/targets | summary counts and every target's status, latency and last error |
| POST | /api/targets | add a target: ``{"name", "url", "mode", "module", …}`` (validated like the config) |
| DELETE | /api/targets/{name} | remove it |
| POST | /api/targets/{name}/pause | stop probing it / close its connection, no auto-reconnect |
| POST | /api/targets/{name}/reconnect | resume it, or reconnect a persistent one now |

URLs are always shown redacted. Every change persists in the state file.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from time import perf_counter
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from wsmon.config.file import Mode
from wsmon.continuous.monitor import Monitor
from wsmon.continuous.store import ConnectionState, TargetState
from wsmon.errors import ConfigError
from wsmon.redact import secrets

__all__ = ["api_routes", "target_view"]

HISTORY = 30  # latency samples per target in the sparkline
_ADD_KEYS = {"name", "url", "mode", "module", "interval", "timeout", "labels"}


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None or math.isnan(seconds) else round(seconds * 1000, 3)


def _status(state: TargetState) -> str:
    if state.paused:
        return "paused"
    if state.target.mode is Mode.PERSISTENT:
        return str(state.state)
    if state.latest is None:
        return "pending"
    return "up" if state.latest.success else "down"


def target_view(state: TargetState, runtime: bool, now: float) -> dict[str, Any]:
    """One target as the dashboard shows it: nothing secret, everything it needs."""
    target = state.target
    persistent = target.mode is Mode.PERSISTENT
    latency = state.last_rtt if persistent else (state.latest.ping_rtt if state.latest else None)
    samples = state.window.samples(now)
    p50, p99 = state.window.quantiles(now, (0.5, 0.99)) or (None, None)
    error = state.last_error
    return {
        "name": target.name,
        "url": target.redacted_url,
        "mode": str(target.mode),
        "module": target.module.name,
        "labels": dict(target.labels),
        "status": _status(state),
        "latency_ms": _ms(latency),
        "p50_ms": _ms(p50),
        "p99_ms": _ms(p99),
        "history_ms": [_ms(s) for s in samples[-HISTORY:]],
        "auto_reconnect": persistent and not state.paused,
        "paused": state.paused,
        "runtime": runtime,
        "reconnects": state.reconnects,
        "last_error": None
        if error is None
        else {"reason": str(error.reason), "message": secrets.scrub(error.message), "at": error.at},
    }


def _summary(views: list[dict[str, Any]]) -> dict[str, int]:
    statuses = [v["status"] for v in views]
    return {
        "total": len(views),
        **{str(s): statuses.count(str(s)) for s in ConnectionState},
        "up": statuses.count("up"),
        "down": statuses.count("down"),
        "paused": statuses.count("paused"),
    }


def api_routes(monitor: Monitor | None, csrf_token: Callable[[], str]) -> list[Route]:
    """The API's routes; without a monitor, or before it has started, they answer 503."""

    def running() -> Monitor | None:
        return monitor if monitor is not None and monitor.started else None

    async def session(request: Request) -> JSONResponse:
        identity = request.state.identity
        return JSONResponse({"user": identity.name, "role": identity.role, "csrf_token": csrf_token()})

    async def list_targets(request: Request) -> JSONResponse:
        mon = running()
        if mon is None:
            return _NOT_MONITORING
        now = perf_counter()
        views = [target_view(s, s.target.name in mon.runtime_names, now) for s in mon.store]
        return JSONResponse({"updated_at": time.time(), "summary": _summary(views), "targets": views})

    async def add_target(request: Request) -> JSONResponse:
        mon = running()
        if mon is None:
            return _NOT_MONITORING
        try:
            table = await request.json()
        except ValueError:
            return _error(400, "the body must be a JSON object describing the target")
        if not isinstance(table, dict):
            return _error(400, "the body must be a JSON object describing the target")
        unknown = sorted(set(table) - _ADD_KEYS)
        if unknown:
            return _error(400, f"unknown field {unknown[0]!r}; allowed: {', '.join(sorted(_ADD_KEYS))}")
        if "${" in str(table.get("url", "")):
            return _error(400, "a target added here takes a literal URL: ${VAR} works in the config file only")
        try:
            target = mon.add(table)
        except ConfigError as exc:
            return _error(400, secrets.scrub(str(exc)))
        state = mon.store.get(target.name)
        assert state is not None
        return JSONResponse(target_view(state, True, perf_counter()), status_code=201)

    def action(name: str, do: Callable[[Monitor, str], None]) -> Callable[[Request], Any]:
        async def handler(request: Request) -> JSONResponse:
            mon = running()
            if mon is None:
                return _NOT_MONITORING
            target = request.path_params["name"]
            try:
                do(mon, target)
            except KeyError:
                return _error(404, f"no target named {target!r}")
            return JSONResponse({"ok": True, "action": name, "target": target})

        return handler

    return [
        Route("/api/session", session),
        Route("/api/targets", list_targets, methods=["GET"]),
        Route("/api/targets", add_target, methods=["POST"]),
        Route("/api/targets/{name}", action("remove", lambda m, n: m.remove(n)), methods=["DELETE"]),
        Route("/api/targets/{name}/pause", action("pause", lambda m, n: m.pause(n)), methods=["POST"]),
        Route("/api/targets/{name}/reconnect", action("reconnect", lambda m, n: m.reconnect(n)), methods=["POST"]),
    ]


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


_NOT_MONITORING = _error(503, "wsmon is starting up: try again in a moment")
