"""The HTTP face of ``wsmon serve``: ``/probe``, ``/metrics``, health, reload, the dashboard and
its API (``wsmon.web.api``), and a small index.

``/probe`` and ``/metrics`` only read state and run probes. What changes anything goes through
its owner: ``POST /-/reload`` through the reload that ``wsmon.serve`` wires (the config in force
is ``LiveConfig``'s), the dashboard's actions through the Monitor.
"""

from __future__ import annotations

import html
import secrets
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path

from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4, generate_latest
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import FileResponse, HTMLResponse, PlainTextResponse, Response, StreamingResponse
from starlette.routing import Mount, Route, WebSocketRoute
from starlette.staticfiles import StaticFiles
from starlette.websockets import WebSocket, WebSocketDisconnect

from wsmon import __version__
from wsmon.config.file import Config
from wsmon.config.live import LiveConfig
from wsmon.continuous.monitor import Monitor
from wsmon.continuous.series import stream_store
from wsmon.errors import TargetError
from wsmon.metrics.exporter import ExporterMetrics
from wsmon.metrics.exposition import render
from wsmon.metrics.probe_series import PROBE_FAMILIES, write_result
from wsmon.metrics.sinks import MetricSink
from wsmon.probe.log import ProbeLog
from wsmon.probe.prober import probe
from wsmon.probe.timeouts import probe_timeout
from wsmon.web.access import AccessControl
from wsmon.web.api import api_routes
from wsmon.ws.url import parse_target

__all__ = ["ECHO_PATH", "ExporterState", "create_app"]

ECHO_PATH = "/ws/echo"
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
    if not state.config.web.probe_allowed(params["target"], configured is not None):
        return PlainTextResponse("target not allowed by [web] probe_allow\n", status_code=403)
    module_name = params.get("module") or (configured.module.name if configured else "ping")
    module = state.config.modules.get(module_name)
    if module is None:
        known = ", ".join(sorted(state.config.modules))
        return _bad_request(f"unknown module {module_name!r}: known modules are {known}")
    try:
        redacted = parse_target(target).redacted
    except TargetError as exc:
        return _bad_request(str(exc))
    try:
        timeout = probe_timeout(
            configured.timeout if configured else state.config.settings.timeout,
            module.timeout,
            request.headers.get(_SCRAPE_TIMEOUT_HEADER),
            state.timeout_offset,
        )
    except ValueError as exc:
        return _bad_request(f"bad {_SCRAPE_TIMEOUT_HEADER} header: {exc}")
    debug = params.get("debug", "").lower() == "true"
    log = ProbeLog(redacted, keep=debug, emit=state.debug) if debug or state.debug else None
    metrics = state.metrics
    metrics.in_flight.inc()
    try:
        result = await probe(target, module, timeout, log=log)
    finally:
        metrics.in_flight.dec()
    metrics.observe(module_name, result)
    families = MetricSink(PROBE_FAMILIES)
    write_result(families, result, ping_enabled=module.ping)
    if debug and log is not None:
        text, _ = render(families, "text/plain")
        body = "Logs for the probe:\n" + "\n".join(log.lines) + "\n\nMetrics that would have been returned:\n"
        return PlainTextResponse(body + text.decode())
    body_bytes, content_type = render(families, request.headers.get("accept"))
    return Response(body_bytes, media_type=content_type)


async def _metrics(request: Request) -> Response:
    """The exporter's own health, then every target's series, as text format 0.0.4.

    Text only, whatever ``Accept`` prefers: the targets' series are written straight to
    text for speed (see ``wsmon.continuous.series``), and every scraper reads text. They are
    streamed as they are written (10,000 targets are ~35 MB): memory stays at a chunk, the
    event loop keeps its turns, and a slow scraper holds back only its own response.
    """
    state: ExporterState = request.app.state.exporter
    own = generate_latest(state.metrics.registry)
    monitor = state.monitor
    if monitor is None or not monitor.started:
        return Response(own, media_type=CONTENT_TYPE_PLAIN_0_0_4)

    async def body() -> AsyncIterator[bytes]:
        yield own
        async for chunk in stream_store(monitor.store):
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
    app = Starlette(
        middleware=[Middleware(AccessControl, web=lambda: state.config.web, csrf_token=csrf_token)],
        routes=[
            Route("/dashboard", _dashboard),
            Mount("/dashboard/static", StaticFiles(directory=_STATIC), name="static"),
            *api_routes(state.monitor, lambda: csrf_token),
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
    return app
