"""The HTTP face of ``wsmon serve``: ``/probe``, ``/metrics``, health, reload, the dashboard and
its JSON API (``wsmon.web.api``), and a small index.

``/probe`` and ``/metrics`` only read state and run probes. Two kinds of requests change
things, each through what owns it: ``POST /-/reload`` calls ``ExporterState.reload`` (what
SIGHUP does: re-read the config file), and the dashboard's API adds, removes, pauses and
reconnects targets through the Monitor. Who may do either is ``wsmon.web.access``'s call.
"""

from __future__ import annotations

import errno
import html
import os
import secrets
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from time import perf_counter

import structlog
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4, generate_latest
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import FileResponse, HTMLResponse, PlainTextResponse, Response, StreamingResponse
from starlette.routing import Mount, Route, WebSocketRoute
from starlette.staticfiles import StaticFiles
from starlette.websockets import WebSocket, WebSocketDisconnect

from wsmon import __version__
from wsmon.config.file import Config, Target
from wsmon.config.live import LiveConfig
from wsmon.config.url_patterns import url_matches
from wsmon.continuous.monitor import Monitor
from wsmon.continuous.series import stream_store
from wsmon.errors import TargetError
from wsmon.metrics.exporter import ExporterMetrics
from wsmon.metrics.exposition import render
from wsmon.metrics.probe_series import PROBE_FAMILIES, write_result
from wsmon.metrics.sinks import MetricSink
from wsmon.probe.log import ProbeLog
from wsmon.probe.module import Module
from wsmon.probe.prober import probe
from wsmon.probe.timeouts import probe_timeout
from wsmon.web.access import AccessControl, ForwardedHeaders
from wsmon.web.api import api_routes
from wsmon.web.limits import BodyLimit, ProbeSlots, WebLimits
from wsmon.web.login import Logins, login_routes
from wsmon.ws.url import parse_target

__all__ = ["ECHO_PATH", "ExporterState", "create_app"]

ECHO_PATH = "/ws/echo"
# How a probe's error ends when the process has no descriptor left for its socket.
_OUT_OF_DESCRIPTORS = tuple(os.strerror(code) for code in (errno.EMFILE, errno.ENFILE))
_SCRAPE_TIMEOUT_HEADER = "X-Prometheus-Scrape-Timeout-Seconds"


@dataclass(frozen=True)
class ExporterState:
    """What the handlers work with, all of it known before the app is made."""

    live: LiveConfig  # the config in force
    timeout_offset: float = 0.5  # subtracted from the scraper's deadline
    debug: bool = False  # --debug: log every probe's phases
    telemetry_path: str = "/metrics"
    probe_path: str = "/probe"
    metrics: ExporterMetrics = field(default_factory=ExporterMetrics)
    monitor: Monitor | None = None  # continuous mode (its targets run once it has started)
    reload: Callable[[], bool] | None = None  # what POST /-/reload does (SIGHUP does the same)
    limits: WebLimits = field(default_factory=WebLimits)  # probes at once, request sizes and times

    @property
    def config(self) -> Config:
        return self.live.current


def _bad_request(message: str) -> PlainTextResponse:
    return PlainTextResponse(message + "\n", status_code=400)


async def _probe(request: Request) -> Response:
    state: ExporterState = request.app.state.exporter
    params = request.query_params
    target = params.get("target")
    if not target:
        return _bad_request("missing target parameter: use ?target=wss://host/path or a configured target name")
    configured = None if "://" in target else state.config.target(target)
    if configured is not None:  # a name from the config: its URL (and token) never leave wsmon
        target = configured.url
    elif "://" not in target and state.config.targets:
        return _bad_request(f"unknown target name {target!r}: use a name from the config or a ws:// URL")
    try:
        redacted = parse_target(target).redacted  # a valid host before any matching
    except TargetError as exc:
        return _bad_request(str(exc))
    if not state.config.web.probe_allowed(params["target"], configured is not None):
        return _forbidden("target not allowed by [web] probe_allow")
    module_name = params.get("module") or (configured.module.name if configured else "ping")
    module = state.config.modules.get(module_name)
    if module is None:
        known = ", ".join(sorted(state.config.modules))
        return _bad_request(f"unknown module {module_name!r}: known modules are {known}")
    refused = _module_refuses(module, target, configured)
    if refused:
        return _forbidden(refused)
    try:
        timeout = probe_timeout(
            configured.timeout if configured else state.config.settings.timeout,
            module.timeout,
            request.headers.get(_SCRAPE_TIMEOUT_HEADER),
            state.timeout_offset,
        )
    except ValueError as exc:
        return _bad_request(f"bad {_SCRAPE_TIMEOUT_HEADER} header: {exc}")
    slots: ProbeSlots = request.app.state.probe_slots
    if not slots.take():
        # Run short of descriptors, a probe would fail for a wrong reason: refuse it instead.
        return _unavailable(f"too many probes at once (--web.max-probes {slots.limit}): try again later")
    debug = params.get("debug", "").lower() == "true"
    log = ProbeLog(redacted, keep=debug, emit=state.debug) if debug or state.debug else None
    metrics = state.metrics
    metrics.in_flight.inc()
    try:
        result = await probe(target, module, timeout, log=log)
    finally:
        metrics.in_flight.dec()
        slots.give()
    if not result.success and result.error.endswith(_OUT_OF_DESCRIPTORS):
        # wsmon's own shortage, not the target's failure: the scraper must not record it as one.
        structlog.get_logger("wsmon").warning(
            "a probe found no free file descriptor; raise LimitNOFILE or lower --web.max-probes"
        )
        return _unavailable("wsmon is out of file descriptors: try again later")
    metrics.observe(module_name, result)
    families = MetricSink(PROBE_FAMILIES)
    # /probe is not budgeted (its scraper asks for this one result), but for the names it uses.
    blackbox = (configured.series if configured else state.config.settings.series).blackbox
    write_result(families, result, ping_enabled=module.ping, blackbox=blackbox)
    if debug and log is not None:
        text, _ = render(families, "text/plain")
        body = "Logs for the probe:\n" + "\n".join(log.lines) + "\n\nMetrics that would have been returned:\n"
        return PlainTextResponse(body + text.decode())
    body_bytes, content_type = render(families, request.headers.get("accept"))
    return Response(body_bytes, media_type=content_type)


def _unavailable(message: str) -> PlainTextResponse:
    return PlainTextResponse(message + "\n", status_code=503, headers={"Retry-After": "1"})


def _forbidden(message: str) -> PlainTextResponse:
    return PlainTextResponse(message + "\n", status_code=403)


def _module_refuses(module: Module, url: str, configured: Target | None) -> str | None:
    """Why ``module`` may not probe ``url``, or None.

    A module with credentials (or an ``allow`` list) goes only to the targets its operator named
    for it: a configured target that uses it, or a URL its ``allow`` patterns match. Anyone who
    can reach /probe could otherwise have wsmon send its tokens to a host of their choosing.
    """
    if module.allow is None and not module.carries_credentials:
        return None
    if configured is not None:
        if configured.module.name == module.name:
            return None
    elif any(url_matches(url, rule) for rule in module.allow or ()):
        return None
    why = "carries credentials and" if module.carries_credentials else "has an allow list and"
    return (
        f"module {module.name!r} {why} only probes its own targets: a configured target that uses it, "
        f"or a URL matching its allow patterns"
    )


async def _metrics(request: Request) -> Response:
    """The exporter's own health, then every target's series, as text format 0.0.4.

    Text only, whatever ``Accept`` prefers: the targets' series are written straight to
    text for speed (see ``wsmon.continuous.series``), and every scraper reads text. They are
    streamed as they are written (10,000 targets are ~35 MB): memory stays at a chunk, the
    event loop keeps its turns, and a slow scraper holds back only its own response.
    """
    began = perf_counter()  # every window is cut here: when the scrape came, before any answer
    state: ExporterState = request.app.state.exporter
    own = generate_latest(state.metrics.registry)
    monitor = state.monitor
    if monitor is None or not monitor.started:
        return Response(own, media_type=CONTENT_TYPE_PLAIN_0_0_4)

    async def body() -> AsyncIterator[bytes]:
        yield own
        async for chunk in stream_store(monitor.store, began):
            yield chunk

    return StreamingResponse(body(), media_type=CONTENT_TYPE_PLAIN_0_0_4)


async def _reload(request: Request) -> Response:
    state: ExporterState = request.app.state.exporter
    if state.reload is None:
        return PlainTextResponse("nothing to reload: wsmon runs without --config\n", status_code=400)
    if state.reload():
        return PlainTextResponse("config reloaded\n")
    return PlainTextResponse("config reload failed; the previous config keeps running (see the logs)\n", 500)


async def _healthy(_: Request) -> Response:
    return PlainTextResponse("wsmon is Healthy.\n")


async def _ready(_: Request) -> Response:
    return PlainTextResponse("wsmon is Ready.\n")


async def _index(request: Request) -> Response:
    state: ExporterState = request.app.state.exporter
    links = [
        (state.telemetry_path, "Metrics"),
        (
            f"{state.probe_path}?target=ws://127.0.0.1:{request.url.port or 80}{ECHO_PATH}",
            "Probe the built-in echo endpoint",
        ),
        (
            f"{state.probe_path}?target=ws://127.0.0.1:{request.url.port or 80}{ECHO_PATH}&debug=true",
            "…with debug output",
        ),
        ("/-/healthy", "Health"),
        ("/-/ready", "Readiness"),
    ]
    items = "".join(f'<li><a href="{html.escape(href)}">{html.escape(text)}</a></li>' for href, text in links)
    return HTMLResponse(
        f"<!doctype html><html><head><title>wsmon</title></head><body><h1>wsmon {__version__}</h1>"
        f"<p>WebSocket endpoint monitor.</p><ul>{items}</ul></body></html>"
    )


async def _echo(websocket: WebSocket) -> None:
    """A WebSocket echo endpoint, so that a fresh install has something to watch offline."""
    await websocket.accept()
    try:
        while True:
            message = await websocket.receive()
            if message["type"] == "websocket.disconnect":
                return
            if message.get("text") is not None:
                await websocket.send_text(message["text"])
            elif message.get("bytes") is not None:
                await websocket.send_bytes(message["bytes"])
    except WebSocketDisconnect:
        return


_STATIC = Path(__file__).parent / "static"


async def _dashboard(request: Request) -> Response:
    return FileResponse(_STATIC / "dashboard.html", headers=_PAGE_HEADERS)


_PAGE_HEADERS = {
    # The page loads only its own script and style and talks only to wsmon; no framing.
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}


def create_app(state: ExporterState) -> Starlette:
    csrf_token = secrets.token_urlsafe(32)  # per process: a restart makes pages fetch a new one
    logins = Logins(lambda: state.config.web)
    login_assets = {name: _STATIC / name for name in ("login.js", "login.css")}
    app = Starlette(
        middleware=[
            Middleware(ForwardedHeaders, web=lambda: state.config.web),  # first: who the client is
            Middleware(AccessControl, logins=logins, csrf_token=csrf_token),
            Middleware(BodyLimit, limits=state.limits),  # after the login: strangers' bodies are not read
        ],
        routes=[
            Route("/dashboard", _dashboard),
            Mount("/dashboard/static", StaticFiles(directory=_STATIC), name="static"),
            *api_routes(state.monitor, lambda: csrf_token),
            *login_routes(logins, _STATIC / "login.html", login_assets, _PAGE_HEADERS),
            Route("/", _index),
            Route(state.probe_path, _probe),
            Route(state.telemetry_path, _metrics),
            Route("/-/healthy", _healthy, methods=["GET", "HEAD"]),
            Route("/-/ready", _ready, methods=["GET", "HEAD"]),
            Route("/-/reload", _reload, methods=["POST", "PUT"]),
            WebSocketRoute(ECHO_PATH, _echo),
        ],
    )
    app.state.exporter = state
    app.state.probe_slots = ProbeSlots(state.limits.max_probes)
    return app
