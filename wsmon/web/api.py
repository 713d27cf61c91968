"""The JSON API behind the dashboard (and usable on its own): ``/api/…``.

| method | path | what |
| --- | --- | --- |
| GET | /api/session | who you are, your role, the CSRF token for changes, ``[web] base_url`` redacted |
| GET | /api/targets | summary counts and every target's status, latency and last error |
| POST | /api/targets | add a target: ``{"name", "url", "mode", "module", …}`` (validated like the config), or |
| | | ``{"endpoint", …}`` instead of ``url``: ``[web] base_url`` + that name (``name`` defaults to it) |
| DELETE | /api/targets/{name} | remove it |
| POST | /api/targets/{name}/pause | stop probing it / close its connection, no auto-reconnect |
| POST | /api/targets/{name}/reconnect | resume it, or reconnect a persistent one now |

URLs are always shown redacted. Every change persists in the state file, and is applied only
once it is saved: when the file cannot be written (a read-only or full filesystem), the answer
is 503 with what failed, and nothing changed.

A body is a JSON object of at most 64 KiB (``wsmon.web.limits``) with at most ``MAX_LABELS``
labels; names, label names and values, and URLs have bounded lengths.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from time import perf_counter
from typing import Any

import structlog
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from wsmon.config.file import Mode
from wsmon.config.web import MAX_ENDPOINT
from wsmon.continuous.monitor import Monitor
from wsmon.continuous.store import ConnectionState, TargetState
from wsmon.errors import ConfigError
from wsmon.redact import secrets

log = structlog.get_logger("wsmon")

__all__ = ["api_routes", "target_view"]

HISTORY = 30  # latency samples per target in the sparkline
_ADD_KEYS = {"name", "url", "endpoint", "mode", "module", "interval", "timeout", "labels"}
MAX_LABELS = 32  # a target's own labels: each one is on every series of the target
MAX_NAME = 128  # characters of a target's name, a label's name or a module's name
MAX_LABEL_VALUE = 1024
MAX_URL = 8192  # more than any URL a server takes in a request line


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
        base_url = monitor.live.current.web.redacted_base_url if monitor is not None else None
        return JSONResponse(
            {"user": identity.name, "role": identity.role, "csrf_token": csrf_token(), "base_url": base_url}
        )

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
        if "endpoint" in table and "name" not in table and isinstance(table["endpoint"], str):
            table["name"] = table["endpoint"]  # "data-feed" names the target as the endpoint
        too_large = _too_large(table)
        if too_large:
            return _error(400, too_large)
        try:
            target = mon.add(table)
        except ConfigError as exc:
            return _error(400, secrets.scrub(str(exc)))
        except OSError as exc:
            return _not_saved(mon, exc)
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
            except OSError as exc:
                return _not_saved(mon, exc)
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


def _too_large(table: dict[str, Any]) -> str | None:
    """What in an "add a target" body is beyond the API's bounds, or None (types are checked
    later, as the config file's are)."""
    bounds = (
        ("name", MAX_NAME),
        ("module", MAX_NAME),
        ("mode", MAX_NAME),
        ("url", MAX_URL),
        ("endpoint", MAX_ENDPOINT),
    )
    for key, limit in bounds:
        value = table.get(key)
        if isinstance(value, str) and len(value) > limit:
            return f"{key} is longer than {limit} characters"
    labels = table.get("labels")
    if isinstance(labels, dict):
        if len(labels) > MAX_LABELS:
            return f"a target takes at most {MAX_LABELS} labels, not {len(labels)}"
        for name, value in labels.items():
            if len(name) > MAX_NAME:
                return f"a label name is longer than {MAX_NAME} characters"
            if isinstance(value, str) and len(value) > MAX_LABEL_VALUE:
                return f"label {name!r}: its value is longer than {MAX_LABEL_VALUE} characters"
    return None


def _not_saved(monitor: Monitor, exc: OSError) -> JSONResponse:
    """503 for a change the state file could not take: it was not applied either."""
    why = exc.strerror or type(exc).__name__
    log.error("dashboard change not saved; nothing changed", path=str(monitor.state_path), error=why)
    return _error(
        503,
        f"the change was not saved to the state file {monitor.state_path} ({why}), so nothing changed: "
        "make its directory writable (or free some space) and try again",
    )


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


_NOT_MONITORING = _error(503, "wsmon is starting up: try again in a moment")
