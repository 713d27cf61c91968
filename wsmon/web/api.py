"""The JSON API behind the dashboard (and usable on its own): ``/api/…``.

| method | path | what |
| --- | --- | --- |
| GET | /api/session | who you are, your role, the CSRF token for changes, ``[web] base_url`` redacted |
| GET | /api/summary | counts by status, fleet latency, worst offenders, changes since a version |
| GET | /api/targets | one page of targets (``q``, ``status``, ``sort``, ``limit``, ``offset``) and the totals |
| GET | /api/targets/{name} | one target in detail: its last errors, its window, its counters |
| POST | /api/targets | add a target: ``{"name", "url", "mode", "module", …}`` (validated like the config), or |
| | | ``{"endpoint", …}`` instead of ``url``: ``[web] base_url`` + that name (``name`` defaults to it) |
| DELETE | /api/targets/{name} | remove it |
| POST | /api/targets/{name}/pause | stop probing it / close its connection, no auto-reconnect |
| POST | /api/targets/{name}/reconnect | resume it, or reconnect a persistent one now |

The three GETs of targets carry an ``ETag``; a request whose ``If-None-Match`` names it is
answered 304 without a body (for a page, before any of its rows is built: see
``wsmon.web.fleet``). A bad query parameter is answered 400 with one line.

URLs are always shown redacted. Every change persists in the state file, and is applied only
once it is saved: when the file cannot be written (a read-only or full filesystem), the answer
is 503 with what failed, and nothing changed.

A body is a JSON object of at most 64 KiB (``wsmon.web.limits``) with at most ``MAX_LABELS``
labels; names, label names and values, and URLs have bounded lengths.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from time import perf_counter
from typing import Any

import structlog
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from wsmon.config.web import MAX_ENDPOINT
from wsmon.continuous.monitor import Monitor
from wsmon.errors import ConfigError
from wsmon.redact import secrets
from wsmon.web.fleet import Fleet, QueryError, etag_matches, etag_of, parse_query
from wsmon.web.views import detail_view, target_view

log = structlog.get_logger("wsmon")

__all__ = ["api_routes"]

_ADD_KEYS = {"name", "url", "endpoint", "mode", "module", "interval", "timeout", "labels"}
MAX_LABELS = 32  # a target's own labels: each one is on every series of the target
MAX_NAME = 128  # characters of a target's name, a label's name or a module's name
MAX_LABEL_VALUE = 1024
MAX_URL = 8192  # more than any URL a server takes in a request line
_READ_HEADERS = {"Cache-Control": "no-cache, private"}  # always ask again (with the ETag)


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

    fleet = None if monitor is None else Fleet(monitor.store)

    async def list_targets(request: Request) -> Response:
        mon = running()
        if mon is None or fleet is None:
            return _NOT_MONITORING
        try:
            query = parse_query(request.query_params)
        except QueryError as exc:
            return _error(400, str(exc))
        matched = fleet.matching(query)
        rows = matched[query.offset : query.offset + query.limit]
        tag = fleet.page_tag(query, rows)
        if etag_matches(request.headers.get("if-none-match"), tag):
            return _not_modified(tag)
        now, runtime = perf_counter(), mon.runtime_names
        page = {
            "updated_at": time.time(),
            "version": mon.store.version,
            "summary": fleet.counts(),
            "total": len(mon.store),
            "matched": len(matched),
            "offset": query.offset,
            "limit": query.limit,
            "targets": [target_view(s, s.target.name in runtime, now, fleet.card(s).url) for s in rows],
        }
        return JSONResponse(page, headers={"ETag": tag, **_READ_HEADERS})

    async def summary(request: Request) -> Response:
        mon = running()
        if mon is None or fleet is None:
            return _NOT_MONITORING
        since = request.query_params.get("since")
        unknown = sorted(set(request.query_params) - {"since"})
        if unknown:
            return _error(400, f"unknown parameter {unknown[0][:40]!r}: use since")
        if since is not None and not (since.isascii() and since.isdigit() and len(since) < 19):
            return _error(400, f"since must be a version from an earlier answer (a whole number), not {since[:40]!r}")
        return _tagged(request, fleet.summary(None if since is None else int(since)))

    async def target_detail(request: Request) -> Response:
        mon = running()
        if mon is None:
            return _NOT_MONITORING
        name = request.path_params["name"]
        state = mon.store.get(name)
        if state is None:
            return _error(404, f"no target named {name[:MAX_NAME]!r}")
        return _tagged(request, detail_view(state, name in mon.runtime_names, perf_counter()))

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
        Route("/api/summary", summary, methods=["GET"]),
        Route("/api/targets", list_targets, methods=["GET"]),
        Route("/api/targets/{name}", target_detail, methods=["GET"]),
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


def _tagged(request: Request, body: dict[str, Any]) -> Response:
    """``body`` with ``updated_at`` and an ETag of the rest; 304 when the client has it already."""
    tag = etag_of(json.dumps(body, sort_keys=True).encode())
    if etag_matches(request.headers.get("if-none-match"), tag):
        return _not_modified(tag)
    return JSONResponse({"updated_at": time.time(), **body}, headers={"ETag": tag, **_READ_HEADERS})


def _not_modified(tag: str) -> Response:
    return Response(status_code=304, headers={"ETag": tag, **_READ_HEADERS})


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


_NOT_MONITORING = _error(503, "wsmon is starting up: try again in a moment")
