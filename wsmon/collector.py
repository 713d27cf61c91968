"""The Store as metric families, built fresh at every scrape (or push) from stored state.

Per target: the ``probe_*`` gauges of the latest result, counts by result and reason,
cumulative latency histograms, rolling-window quantiles, and for persistent targets the
connection state, reconnects and subscription figures. Every series carries ``target`` (the
configured name, never the URL) and the target's own labels.
"""

from __future__ import annotations

from collections.abc import Iterable
from time import perf_counter

from prometheus_client.core import Metric

from wsmon.histogram import LatencyHistogram
from wsmon.probe_metrics import ProbeFamilies
from wsmon.store import ConnectionState, Store, TargetState

__all__ = ["WINDOW_QUANTILES", "StoreCollector"]

WINDOW_QUANTILES = (0.0, 0.5, 0.9, 0.99, 1.0)

_DOCS = {
    "wsmon_probes": ("counter", "Probes (or persistent pings) done, by result and failure reason"),
    "wsmon_connect_duration_seconds": ("histogram", "Connection establishment (TCP, TLS and upgrade)"),
    "wsmon_ping_pong_duration_seconds": ("histogram", "Ping to pong round trips"),
    "wsmon_ping_pong_window_seconds": (
        "gauge",
        "Ping-pong round trips over the rolling window: quantile 0 is the minimum, 1 the maximum",
    ),
    "wsmon_connection_state": ("gauge", "Persistent connection state: 1 for the current one"),
    "wsmon_reconnects": ("counter", "Persistent connections established again after the first"),
    "wsmon_connected_since_timestamp_seconds": ("gauge", "Unix time the current connection was established"),
    "wsmon_messages_received": ("counter", "Data messages received on a subscription"),
    "wsmon_last_message_timestamp_seconds": ("gauge", "Unix time of the latest message on a subscription"),
    "wsmon_message_value": ("gauge", "A number extracted from a message (e.g. the block height)"),
    "wsmon_message_value_changed_timestamp_seconds": ("gauge", "Unix time the extracted number last changed"),
}
_STATES = tuple(ConnectionState)


def _format(value: float) -> str:
    return repr(float(value))


class StoreCollector:
    def __init__(self, store: Store) -> None:
        self._store = store

    def collect(self) -> Iterable[Metric]:
        seed = ProbeFamilies()
        metrics = {name: Metric(name, doc, kind) for name, (kind, doc) in _DOCS.items()}
        now = perf_counter()
        for state in self._store:
            self._add_target(state, seed, metrics, now)
        yield from seed.collect()
        yield from (m for m in metrics.values() if m.samples)

    def _add_target(self, state: TargetState, seed: ProbeFamilies, m: dict[str, Metric], now: float) -> None:
        target = state.target
        labels = {"target": target.name, **dict(target.labels)}
        persistent = target.mode == "persistent"
        if persistent:
            up = state.state is ConnectionState.CONNECTED
            seed.add_connection(
                labels,
                up=up,
                connect_duration=state.last_connect,
                ping_enabled=target.module.ping,
                ping_ok=state.last_ping_ok,
                rtt=state.last_rtt,
                reason=None if state.last_error is None else str(state.last_error.reason),
            )
        elif state.latest is not None:
            seed.add(state.latest, labels, ping_enabled=target.module.ping)
        probes = m["wsmon_probes"]
        probes.add_sample("wsmon_probes_total", {**labels, "result": "success", "reason": "none"}, state.pings_ok)
        for reason, count in state.failures.items():
            probes.add_sample("wsmon_probes_total", {**labels, "result": "failure", "reason": str(reason)}, count)
        _histogram(m["wsmon_connect_duration_seconds"], labels, state.connect_histogram)
        if target.module.ping:
            _histogram(m["wsmon_ping_pong_duration_seconds"], labels, state.ping_histogram)
            window = m["wsmon_ping_pong_window_seconds"]
            samples = state.window.samples(now)
            if samples:
                for q, value in zip(WINDOW_QUANTILES, state.window.quantiles(now, WINDOW_QUANTILES), strict=True):
                    window.add_sample(window.name, {**labels, "quantile": _format(q)}, value)
        if persistent:
            current = m["wsmon_connection_state"]
            for s in _STATES:
                current.add_sample(current.name, {**labels, "state": str(s)}, float(state.state is s))
            m["wsmon_reconnects"].add_sample("wsmon_reconnects_total", labels, state.reconnects)
            if state.connected_since is not None:
                since = m["wsmon_connected_since_timestamp_seconds"]
                since.add_sample(since.name, labels, state.connected_since)
        if target.subscribe is not None:
            m["wsmon_messages_received"].add_sample("wsmon_messages_received_total", labels, state.messages)
            if state.last_message_at is not None:
                last = m["wsmon_last_message_timestamp_seconds"]
                last.add_sample(last.name, labels, state.last_message_at)
        for name, (value, changed_at) in state.values.items():
            named = {**labels, "name": name}
            m["wsmon_message_value"].add_sample("wsmon_message_value", named, value)
            changed = m["wsmon_message_value_changed_timestamp_seconds"]
            changed.add_sample(changed.name, named, changed_at)


def _histogram(metric: Metric, labels: dict[str, str], histogram: LatencyHistogram) -> None:
    count = 0
    for le, count in histogram.cumulative():
        metric.add_sample(f"{metric.name}_bucket", {**labels, "le": le}, count)
    metric.add_sample(f"{metric.name}_sum", labels, histogram.sum)
    metric.add_sample(f"{metric.name}_count", labels, count)
