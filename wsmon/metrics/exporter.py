"""The exporter's own health on ``/metrics``, in a dedicated registry (never the global one)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from time import perf_counter

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, disable_created_metrics
from prometheus_client.gc_collector import GCCollector
from prometheus_client.platform_collector import PlatformCollector
from prometheus_client.process_collector import ProcessCollector

from wsmon import __version__
from wsmon.metrics.clock import ReceiveClockCollector
from wsmon.probe.result import ProbeResult

__all__ = ["LOOP_LAG_PERIOD", "ExporterMetrics", "LoopLag"]

# `*_created` series double the output and no dashboard or alert of wsmon's uses them.
disable_created_metrics()  # type: ignore[no-untyped-call]

_DURATION_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)
_LAG_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5)
_LOOP_LAG_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1)
LOOP_LAG_PERIOD = 0.025  # seconds between two readings of the event loop's lag (see LoopLag)


class ExporterMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        ProcessCollector(registry=self.registry)
        PlatformCollector(registry=self.registry)
        GCCollector(registry=self.registry)
        self.registry.register(ReceiveClockCollector())
        Gauge("wsmon_build_info", "wsmon version", ["version"], registry=self.registry).labels(__version__).set(1)
        self.probes = Counter(
            "wsmon_exporter_probes",
            "Probes run for /probe requests, by module and result",
            ["module", "result"],
            registry=self.registry,
        )
        self.probe_duration = Histogram(
            "wsmon_exporter_probe_duration_seconds",
            "Duration of probes run for /probe requests",
            ["module"],
            buckets=_DURATION_BUCKETS,
            registry=self.registry,
        )
        self.in_flight = Gauge("wsmon_probes_in_flight", "Probes running right now", registry=self.registry)
        self.scheduler_lag = Histogram(
            "wsmon_scheduler_lag_seconds",
            "How late probes and ping rounds start against their schedule",
            buckets=_LAG_BUCKETS,
            registry=self.registry,
        )
        self.loop_lag = Histogram(
            "wsmon_event_loop_lag_seconds",
            f"How late the event loop ran a timer callback (one every {LOOP_LAG_PERIOD * 1000:g} ms): its stalls",
            buckets=_LOOP_LAG_BUCKETS,
            registry=self.registry,
        )
        self.targets = Gauge(
            "wsmon_targets", "Targets monitored by this replica, by mode", ["mode"], registry=self.registry
        )
        self.reload_ok = Gauge(
            "wsmon_config_last_reload_successful", "Whether the last config (re)load succeeded", registry=self.registry
        )
        self.reload_time = Gauge(
            "wsmon_config_last_reload_success_timestamp_seconds",
            "Unix time of the last successful config (re)load",
            registry=self.registry,
        )
        self.push_total = Counter(
            "wsmon_push",
            "Pushes of the targets' series, by destination and result",
            ["push", "result"],
            registry=self.registry,
        )
        self.push_last_success = Gauge(
            "wsmon_push_last_success_timestamp_seconds",
            "Unix time of the last successful push",
            ["push"],
            registry=self.registry,
        )
        self.push_duration = Gauge(
            "wsmon_push_last_duration_seconds",
            "How long the last push took (render and send)",
            ["push"],
            registry=self.registry,
        )
        self.push_bytes = Gauge(
            "wsmon_push_last_payload_bytes",
            "Size of the last push before compression",
            ["push"],
            registry=self.registry,
        )
        self.shard = Gauge(
            "wsmon_shard_info",
            "This replica's shard (from 0) and the number of shards",
            ["shard", "shards"],
            registry=self.registry,
        )

    def observe(self, module: str, result: ProbeResult) -> None:
        self.probes.labels(module, "success" if result.success else "failure").inc()
        self.probe_duration.labels(module).observe(result.duration)


class LoopLag:
    """The event loop's own stalls: a timer every ``period`` seconds, and how late it runs.

    The timer comes due at moments unrelated to what the loop is doing, as a pong arrives, so
    its lateness samples what any callback waits for: the rest of the turn under way (a
    scrape's chunk, a garbage collection) and the process's wait for a core. Every 25 ms by
    default: 40 readings a second at a few µs each, so that even 1 ms turns are caught often;
    a stall longer than the period is read once, at its length (the timer does not catch up).
    Lateness is measured from the time of arming with ``perf_counter``; uvloop keeps timers in
    whole milliseconds, so readings below ~1 ms are within its granularity (early reads 0).
    """

    def __init__(self, observe: Callable[[float], None], period: float = LOOP_LAG_PERIOD) -> None:
        self._observe = observe
        self._period = period
        self._due = 0.0
        self._handle: asyncio.TimerHandle | None = None

    def start(self) -> None:
        self._arm(asyncio.get_running_loop())

    def stop(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None

    def _arm(self, loop: asyncio.AbstractEventLoop) -> None:
        self._due = perf_counter() + self._period
        self._handle = loop.call_later(self._period, self._tick, loop)

    def _tick(self, loop: asyncio.AbstractEventLoop) -> None:
        self._observe(max(0.0, perf_counter() - self._due))
        self._arm(loop)
