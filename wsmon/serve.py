"""``wsmon serve``: the web app under uvicorn and the monitor, in one event loop (uvloop).

wsmon handles the signals itself: SIGHUP reloads the config; SIGTERM and SIGINT close every
persistent connection with a close frame (1001, going away), stop the web server and exit 0.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import resource
import signal
from collections.abc import Iterator
from pathlib import Path
from time import perf_counter
from typing import Any

import structlog
import uvicorn

from wsmon.config.file import Config
from wsmon.config.live import LiveConfig
from wsmon.config.push import PushTarget
from wsmon.continuous.monitor import Monitor
from wsmon.continuous.push import PushManager
from wsmon.continuous.series import remote_write_body, stream_store
from wsmon.metrics.exporter import ExporterMetrics, LoopLag
from wsmon.systemd import Notifier
from wsmon.web.app import ExporterState, create_app
from wsmon.web.limits import WebLimits, guarded_http_protocol

__all__ = ["parse_listen_address", "raise_fd_limit", "serve"]

log = structlog.get_logger("wsmon")

# A collection of the oldest generation walks every object alive: at 10,000 persistent targets
# (~270,000 objects) 100-300 ms with the event loop held, and every pong then waiting is reported
# late. Pinging allocates nothing that lasts, so such collections come with start-up and
# reconnect storms. What lives as long as the process (config, targets, their state and
# connections) is moved out of the collector's sight (gc.freeze): at start-up, and again
# HEAP_SETTLE seconds after start-up and after each reload, once connections have opened (or,
# for removed targets, closed). What is not frozen yet is collected first, so that garbage is
# not frozen with it (at 10,000 targets, one pause of ~100 ms, 30 s after start-up).
# Frozen objects are not collected again: a removed target's are freed by reference counting
# (measured: removing 1,000 of 2,000 connected targets by reload left no reference cycles).
HEAP_SETTLE = 30.0


def _freeze_heap() -> None:
    started = perf_counter()
    gc.collect()
    gc.freeze()
    pause = round((perf_counter() - started) * 1000)
    log.info("long-lived objects frozen", objects=gc.get_freeze_count(), pause_ms=pause)


def parse_listen_address(address: str) -> tuple[str, int]:
    """``:9095`` (all interfaces), ``127.0.0.1:9095`` or ``[::1]:9095`` → (host, port)."""
    host, sep, port_text = address.rpartition(":")
    if not sep or not port_text.isdigit() or not 0 <= int(port_text) <= 65535:
        raise ValueError(f"invalid listen address {address!r}: use host:port, e.g. :9095 or 127.0.0.1:9095")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    return host or "0.0.0.0", int(port_text)


class _Server(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield  # wsmon installs its own handlers: reload on SIGHUP, a graceful close on SIGTERM


async def serve(
    config: Config,
    host: str,
    port: int,
    *,
    config_path: str | None = None,
    overrides: dict[str, Any] | None = None,
    timeout_offset: float = 0.5,
    debug: bool = False,
    telemetry_path: str = "/metrics",
    probe_path: str = "/probe",
    shard: tuple[int, int] = (0, 1),
    extra_pushes: tuple[PushTarget, ...] = (),
    state_path: Path | None = None,
    limits: WebLimits | None = None,
) -> None:
    loop = asyncio.get_running_loop()
    notifier = Notifier()
    metrics = ExporterMetrics()
    live = LiveConfig(
        config, path=config_path, overrides=overrides, reload_ok=metrics.reload_ok, reload_time=metrics.reload_time
    )
    monitor = Monitor(live, metrics, shard=shard, state_path=state_path)
    pushes = PushManager(
        lambda: stream_store(monitor.store),
        metrics,
        remote_write=lambda stamp, labels: remote_write_body(monitor.store, stamp, labels),
    )
    live.on_change(lambda config: pushes.apply((*config.pushes, *extra_pushes)))
    lag = LoopLag(metrics.loop_lag.observe)
    lag.start()
    refreeze: asyncio.TimerHandle | None = None

    def settle_heap() -> None:
        nonlocal refreeze
        if refreeze is not None:
            refreeze.cancel()  # reloads in a row: once, after the last
        refreeze = loop.call_later(HEAP_SETTLE, _freeze_heap)

    live.on_change(lambda config: settle_heap())

    def reload() -> bool:
        notifier.notify("RELOADING=1")
        try:
            return live.reload()
        finally:  # systemd must never be left believing a reload is still under way
            notifier.notify("READY=1")

    state = ExporterState(
        live=live,
        timeout_offset=timeout_offset,
        debug=debug,
        telemetry_path=telemetry_path,
        probe_path=probe_path,
        metrics=metrics,
        monitor=monitor,
        reload=reload,
        limits=limits or WebLimits.for_open_files(),
    )
    web = live.current.web
    server = _Server(
        uvicorn.Config(
            create_app(state),
            host=host,
            port=port,
            log_config=None,  # logging is configured by wsmon.logs
            access_log=False,  # access lines would carry /probe?target=… URLs, tokens included
            lifespan="off",
            ws_ping_interval=None,  # the echo endpoint must not ping the probes that test it
            ssl_certfile=web.tls_cert_file,
            ssl_keyfile=web.tls_key_file,
            # Header read timeout and per-address connection cap (uvicorn has neither).
            http=guarded_http_protocol(state.limits, lambda address: live.current.web.trusts(address)),
            # X-Forwarded-* are believed from [web] trusted_proxies only (wsmon.web.access), never
            # from uvicorn's default of 127.0.0.1: any local process could claim any address.
            proxy_headers=False,
            backlog=state.limits.backlog,
        )
    )
    stopping = asyncio.Event()
    loop.add_signal_handler(signal.SIGTERM, stopping.set)
    loop.add_signal_handler(signal.SIGINT, stopping.set)
    serving = loop.create_task(server.serve())
    while not server.started and not serving.done():  # noqa: ASYNC110 - uvicorn offers no event
        await asyncio.sleep(0.01)
    # Targets start once wsmon listens: the bundled config watches wsmon's own echo endpoint.
    monitor.start()
    pushes.apply((*live.current.pushes, *extra_pushes))
    gc.freeze()  # what exists now (config, targets, their state): no pause, unlike a collection
    settle_heap()  # …and their connections, once open
    loop.add_signal_handler(signal.SIGHUP, reload)
    if server.started:
        log.info(
            "listening",
            address=f"{host}:{port}",
            probe_path=probe_path,
            metrics_path=telemetry_path,
            targets=len(monitor.store),
        )
        notifier.ready()
        stopped = loop.create_task(stopping.wait())
        await asyncio.wait({serving, stopped}, return_when=asyncio.FIRST_COMPLETED)
        stopped.cancel()
    notifier.stopping()
    log.info("shutting down")
    lag.stop()
    if refreeze is not None:
        refreeze.cancel()
    await monitor.stop()
    await pushes.stop()  # a final push of the final state, after every connection closed
    server.should_exit = True
    await serving
    notifier.close()


def raise_fd_limit() -> None:
    """Raise the soft limit on open files to the hard one.

    Every persistent target holds a socket, and 10,000 of them need more descriptors than the
    common soft limit of 1,024; the hard limit is what the administrator allows (systemd's
    ``LimitNOFILE=``, the container runtime's ulimit).
    """
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    # An unlimited hard limit still stops at the kernel's fs.nr_open (1,048,576 by default).
    wanted = hard if hard != resource.RLIM_INFINITY else 1 << 20
    if soft < wanted:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
