"""The exporter's own health on ``/metrics``, in a dedicated registry (never the global one)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, disable_created_metrics
from prometheus_client.gc_collector import GCCollector
from prometheus_client.platform_collector import PlatformCollector
from prometheus_client.process_collector import ProcessCollector

from wsmon import __version__
from wsmon.result import ProbeResult

__all__ = ["ExporterMetrics"]

# `*_created` series double the output and no dashboard or alert of wsmon's uses them.
disable_created_metrics()  # type: ignore[no-untyped-call]

_DURATION_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)


class ExporterMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        ProcessCollector(registry=self.registry)
        PlatformCollector(registry=self.registry)
        GCCollector(registry=self.registry)
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

    def observe(self, module: str, result: ProbeResult) -> None:
        self.probes.labels(module, "success" if result.success else "failure").inc()
        self.probe_duration.labels(module).observe(result.duration)
