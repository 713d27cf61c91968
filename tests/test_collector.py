"""The Store as Prometheus text (wsmon.continuous.series): the §4 series, rendered and parsed back.

Every scrape renders the store both ways wsmon can: ``render_store`` (the text /metrics and push
send) and ``write_target`` into a ``MetricSink`` formatted by prometheus_client's
``generate_latest``; both are parsed back with prometheus_client's parser and must agree.
"""

from __future__ import annotations

import asyncio
import math
import statistics
import struct
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from types import SimpleNamespace

import pytest
from prometheus_client.core import Metric
from prometheus_client.exposition import generate_latest
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.registry import CollectorRegistry

import wsmon.continuous.series
import wsmon.continuous.store
from wsmon.config.file import Mode, Subscription, Target
from wsmon.config.series import FULL
from wsmon.continuous.series import TARGET_FAMILIES, render_store, write_target
from wsmon.continuous.store import ConnectionState, Store, TargetState
from wsmon.metrics.histogram import LATENCY_BUCKETS
from wsmon.metrics.sinks import MetricSink
from wsmon.probe.jsonpath import JsonPath
from wsmon.probe.module import BUILTIN_MODULES
from wsmon.probe.reasons import Reason
from wsmon.probe.result import PingStats, ProbeResult, StepResult

PROBE_URL = "wss://probe-host.example.com/wsmon-collector-token-1a2b3c?apikey=wsmon-collector-key-9z8y"
STREAM_URL = "wss://stream-host.example.com:8546/wsmon-collector-token-4d5e6f"
CONNECT_URL = "ws://connect-host.example.com/wsmon-collector-token-7g8h9i"

PROBE = Target(
    name="probe-a",
    url=PROBE_URL,
    module=BUILTIN_MODULES["ping"],
    labels=(("chain", "eth"), ("region", "eu")),
)
STREAM = Target(
    name="stream-b",
    url=STREAM_URL,
    module=BUILTIN_MODULES["ping"],
    mode=Mode.PERSISTENT,
    labels=(("chain", "eth"),),
    subscribe=Subscription(send='{"method":"eth_subscribe"}', extract=JsonPath.parse("params.result"), name="block"),
)
CONNECT = Target(name="connect-c", url=CONNECT_URL, module=BUILTIN_MODULES["connect"])
DOWN_URL = "ws://down-host.example.com/wsmon-collector-token-0j1k2l"
DOWN = Target(name="down-d", url=DOWN_URL, module=BUILTIN_MODULES["ping"], labels=(("team", "core"),))
OWN_LABELS = {
    "probe-a": {"chain": "eth", "region": "eu"},
    "stream-b": {"chain": "eth"},
    "connect-c": {},
    "down-d": {"team": "core"},
}

PHASES_OK = {"resolve": 0.001, "connect": 0.002, "tls": 0.003, "upgrade": 0.0015}


def f32(x: float) -> float:
    return float(struct.unpack("f", struct.pack("f", x))[0])


def ok(rtt: float, phases: dict[str, float] | None = None) -> ProbeResult:
    phases = dict(PHASES_OK if phases is None else phases)
    return ProbeResult(
        success=True,
        duration=0.02,
        timeout=10.0,
        up=True,
        phases={**phases, "ping": rtt, "close": 0.0005},
        status_code=101,
        ip_protocol=4,
        tls_version="TLSv1.3",
        ping=PingStats(sent=1, rtts=(rtt,)),
    )


# Probe-mode results, oldest first; the last one is the "latest".
PROBE_RESULTS = [
    ok(0.004),
    ok(0.0005, {"resolve": 0.0, "connect": 0.0005, "tls": 0.0, "upgrade": 0.0005}),  # on the bounds
    ProbeResult(
        success=False,
        duration=10.0,
        timeout=10.0,
        reason=Reason.PING_TIMEOUT,
        error="no pong within 10s",
        up=True,
        phases=PHASES_OK,
        status_code=101,
        ping=PingStats(sent=1, rtts=()),
    ),
    ProbeResult(
        success=False,
        duration=0.001,
        timeout=10.0,
        reason=Reason.REFUSED,
        error="connection refused",
        phases={"resolve": 0.001},
    ),
    ok(0.25),
]
PROBE_RTTS = [0.004, 0.0005, 0.25]
PROBE_CONNECTS = [0.0065, 0.001, 0.0065, 0.0065]  # connect + tls + upgrade of the results that were up
STREAM_RTTS = [0.003, 0.005, 0.004]
STREAM_CONNECTS = [0.012, 0.02]


# The monotonic clock (mono) the window is written and read with, injected.
MONO = 100_000.0


def mono() -> float:
    return MONO


class Clock:
    """Stands in for wall-clock time.time() in wsmon.continuous.store."""

    def __init__(self, start: float = 1_700_000_000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    clock = Clock()
    monkeypatch.setattr(wsmon.continuous.store, "time", SimpleNamespace(time=clock))
    monkeypatch.setattr(wsmon.continuous.series, "perf_counter", mono)
    return clock


@dataclass
class Stamps:
    connected_since: float
    last_message: float
    value_changed: float


def _feed_probe(state: TargetState) -> None:
    for result in PROBE_RESULTS:
        state.record_probe(result, mono())


def _feed_stream(state: TargetState, clock: Clock) -> Stamps:
    clock.now = 1_700_000_100.0
    state.state = ConnectionState.CONNECTING
    state.record_connected(STREAM_CONNECTS[0])
    state.record_pong(STREAM_RTTS[0], mono())
    state.record_pong(STREAM_RTTS[1], mono())
    clock.now += 5
    state.record_failure(Reason.PING_TIMEOUT, "no pong within 10s")
    state.record_disconnected()
    state.state = ConnectionState.CONNECTING
    clock.now += 1
    state.record_connected(STREAM_CONNECTS[1])
    connected_since = clock.now
    state.record_pong(STREAM_RTTS[2], mono())
    for step in (1, 1, 1):
        clock.now += step
        state.record_message()
    last_message = clock.now
    clock.now += 1
    state.record_value("block", 100.0)
    clock.now += 1
    state.record_value("block", 101.0)
    value_changed = clock.now
    clock.now += 12
    state.record_value("block", 101.0)  # the same: the change timestamp stays
    return Stamps(connected_since, last_message, value_changed)


Sample = tuple[str, dict[str, str], float]


@dataclass
class Scrape:
    text: str  # what /metrics serves
    types: dict[str, str]  # name in a # TYPE line → type
    samples: list[Sample]
    families: dict[str, str]  # sample name → type of the family prometheus_client's parser puts it in
    metric_text: str  # the same store through MetricSink and generate_latest
    metric_samples: list[Sample]

    def get(self, series: str, /, **labels: str) -> float:
        found = [v for n, lb, v in self.samples if n == series and lb == labels]
        assert len(found) == 1, (series, labels, found)
        return found[0]

    def series(self, name: str, target: str) -> Iterator[tuple[dict[str, str], float]]:
        return ((lb, v) for n, lb, v in self.samples if n == name and lb.get("target") == target)

    def names(self, target: str) -> set[str]:
        return {n for n, lb, _ in self.samples if lb.get("target") == target}


def _parse(text: str) -> tuple[list[Sample], dict[str, str], dict[str, str]]:
    types = {line.split()[2]: line.split()[3] for line in text.splitlines() if line.startswith("# TYPE ")}
    samples, families = [], {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            samples.append((s.name, dict(s.labels), s.value))
            families[s.name] = family.type
    return samples, types, families


class _Collector:
    def __init__(self, metrics: Iterable[Metric]) -> None:
        self._metrics = list(metrics)

    def collect(self) -> Iterable[Metric]:
        return self._metrics


def scrape(store: Store) -> Scrape:
    text = asyncio.run(render_store(store)).decode()
    sink = MetricSink(TARGET_FAMILIES)
    for state in store:
        write_target(sink, state, MONO)
    registry = CollectorRegistry()
    registry.register(_Collector(sink.collect()))
    metric_text = generate_latest(registry).decode()
    samples, types, families = _parse(text)
    metric_samples, _, _ = _parse(metric_text)
    return Scrape(text, types, samples, families, metric_text, metric_samples)


def _key(sample: Sample) -> tuple[str, tuple[tuple[str, str], ...], float]:
    name, labels, value = sample
    return name, tuple(sorted(labels.items())), value


@pytest.fixture
def full(clock: Clock) -> tuple[Scrape, Stamps]:
    store = Store()
    _feed_probe(store.add(PROBE, window=300.0, sample_interval=PROBE.interval))
    stamps = _feed_stream(store.add(STREAM, window=300.0, sample_interval=1.0), clock)
    store.add(CONNECT, window=300.0, sample_interval=CONNECT.interval).record_probe(ok(0.0), mono())
    down = store.add(DOWN, window=300.0, sample_interval=DOWN.interval)
    down.record_probe(PROBE_RESULTS[0], mono())
    down.record_probe(PROBE_RESULTS[3], mono())  # refused
    return scrape(store), stamps


def L(target: str, **extra: str) -> dict[str, str]:
    """The labels of a per-target series: target, the target's own, then the series' own."""
    return {"target": target, **OWN_LABELS[target], **extra}


# --- names, types and labels --------------------------------------------------------------------

EXPECTED_TYPES = {
    "probe_success": "gauge",
    "probe_duration_seconds": "gauge",
    "probe_websocket_up": "gauge",
    "probe_websocket_connection_duration_seconds": "gauge",
    "probe_websocket_ping_pong_success": "gauge",
    "probe_websocket_ping_pong_duration_seconds": "gauge",
    "probe_websocket_duration_seconds": "gauge",
    "probe_websocket_status_code": "gauge",
    "probe_websocket_failure_info": "gauge",
    "probe_timeout_seconds": "gauge",
    "probe_ip_protocol": "gauge",
    "probe_tls_version_info": "gauge",
    "wsmon_probes_total": "counter",
    "wsmon_connect_duration_seconds": "histogram",
    "wsmon_ping_pong_duration_seconds": "histogram",
    "wsmon_ping_pong_window_seconds": "summary",
    "wsmon_connection_state": "gauge",
    "wsmon_reconnects_total": "counter",
    "wsmon_connected_since_timestamp_seconds": "gauge",
    "wsmon_messages_received_total": "counter",
    "wsmon_last_message_timestamp_seconds": "gauge",
    "wsmon_message_value": "gauge",
    "wsmon_message_value_changed_timestamp_seconds": "gauge",
}


def _sample_names(types: dict[str, str]) -> set[str]:
    suffixes = {"histogram": ("_bucket", "_sum", "_count"), "summary": ("", "_sum", "_count")}
    return {name + suffix for name, kind in types.items() for suffix in suffixes.get(kind, ("",))}


def test_series_names(full: tuple[Scrape, Stamps]) -> None:
    result, _ = full
    assert {name for name, _, _ in result.samples} == _sample_names(EXPECTED_TYPES)


def test_every_target_is_there(full: tuple[Scrape, Stamps]) -> None:
    result, _ = full
    assert {labels["target"] for _, labels, _ in result.samples} == set(OWN_LABELS)
    for target in OWN_LABELS:
        assert "wsmon_probes_total" in result.names(target)


def test_every_series_carries_target_and_its_own_labels(full: tuple[Scrape, Stamps]) -> None:
    result, _ = full
    assert result.samples
    for name, labels, _ in result.samples:
        target = labels.get("target")
        assert target in OWN_LABELS, (name, labels)
        for key, value in OWN_LABELS[target].items():
            assert labels.get(key) == value, (name, labels)


def test_no_series_carries_the_url(full: tuple[Scrape, Stamps]) -> None:
    result, _ = full
    for secret in (
        PROBE_URL,
        STREAM_URL,
        CONNECT_URL,
        DOWN_URL,
        "down-host",
        "wsmon-collector-token",
        "wsmon-collector-key",
        "probe-host",
        "stream-host",
        "connect-host",
        "ws://",
        "wss://",
    ):
        assert secret not in result.text
    for _, labels, _ in result.samples:
        assert all("://" not in value for value in labels.values())


# --- probe mode ---------------------------------------------------------------------------------


def test_probe_seed_gauges_are_the_latest_result(full: tuple[Scrape, Stamps]) -> None:
    result, _ = full
    t = "probe-a"
    assert result.get("probe_success", **L(t)) == 1.0
    assert result.get("probe_duration_seconds", **L(t)) == 0.02
    assert result.get("probe_websocket_up", **L(t)) == 1.0
    assert result.get("probe_websocket_connection_duration_seconds", **L(t)) == pytest.approx(0.0065)
    assert result.get("probe_websocket_ping_pong_success", **L(t)) == 1.0
    assert result.get("probe_websocket_ping_pong_duration_seconds", **L(t)) == 0.25
    assert result.get("probe_websocket_status_code", **L(t)) == 101.0
    assert result.get("probe_timeout_seconds", **L(t)) == 10.0
    assert result.get("probe_ip_protocol", **L(t)) == 4.0
    assert result.get("probe_tls_version_info", **L(t, version="TLSv1.3")) == 1.0
    assert result.get("probe_websocket_duration_seconds", **L(t, phase="connect")) == 0.002
    assert not list(result.series("probe_websocket_failure_info", t))  # the latest succeeded


def test_latest_failure_reason(full: tuple[Scrape, Stamps]) -> None:
    result, _ = full
    assert result.get("probe_success", **L("down-d")) == 0.0
    assert list(result.series("probe_websocket_failure_info", "down-d")) == [(L("down-d", reason="refused"), 1.0)]
    counts = {(lb["result"], lb["reason"]): v for lb, v in result.series("wsmon_probes_total", "down-d")}
    assert counts == {("success", "none"): 1.0, ("failure", "refused"): 1.0}


def test_probe_counts_by_result_and_reason(full: tuple[Scrape, Stamps]) -> None:
    result, _ = full
    counts = {(lb["result"], lb["reason"]): v for lb, v in result.series("wsmon_probes_total", "probe-a")}
    assert counts == {("success", "none"): 3.0, ("failure", "ping_timeout"): 1.0, ("failure", "refused"): 1.0}
    for labels, _ in result.series("wsmon_probes_total", "probe-a"):
        assert set(labels) == {"target", "chain", "region", "result", "reason"}


def _buckets(result: Scrape, name: str, target: str) -> dict[str, float]:
    return {lb["le"]: v for lb, v in result.series(f"{name}_bucket", target)}


def _expected_buckets(values: list[float]) -> dict[str, float]:
    bounds = [*LATENCY_BUCKETS, float("inf")]
    return {("+Inf" if b == float("inf") else repr(b)): float(sum(1 for v in values if v <= b)) for b in bounds}


@pytest.mark.parametrize(
    ("target", "name", "values"),
    [
        ("probe-a", "wsmon_connect_duration_seconds", PROBE_CONNECTS),
        ("probe-a", "wsmon_ping_pong_duration_seconds", PROBE_RTTS),
        ("stream-b", "wsmon_connect_duration_seconds", STREAM_CONNECTS),
        ("stream-b", "wsmon_ping_pong_duration_seconds", STREAM_RTTS),
        ("connect-c", "wsmon_connect_duration_seconds", [0.0065]),
    ],
)
def test_histograms(full: tuple[Scrape, Stamps], target: str, name: str, values: list[float]) -> None:
    result, _ = full
    buckets = _buckets(result, name, target)
    assert list(buckets) == [*(repr(b) for b in LATENCY_BUCKETS), "+Inf"]
    assert buckets == _expected_buckets(values)
    assert result.get(f"{name}_count", **L(target)) == len(values)
    assert result.get(f"{name}_sum", **L(target)) == pytest.approx(sum(values))


def test_histogram_bound_is_inclusive(full: tuple[Scrape, Stamps]) -> None:
    result, _ = full
    # 0.0005 s (the second probe's round trip) is in the le="0.0005" bucket.
    assert _buckets(result, "wsmon_ping_pong_duration_seconds", "probe-a")["0.0005"] == 1.0


@pytest.mark.parametrize(("target", "rtts"), [("probe-a", PROBE_RTTS), ("stream-b", STREAM_RTTS)])
def test_window_quantiles(full: tuple[Scrape, Stamps], target: str, rtts: list[float]) -> None:
    result, _ = full
    window = {lb["quantile"]: v for lb, v in result.series("wsmon_ping_pong_window_seconds", target)}
    assert list(window) == ["0.0", "0.5", "0.9", "0.99", "1.0"]
    assert [float(q) for q in window] == list(FULL.quantiles)
    stored = [f32(v) for v in rtts]
    percentiles = statistics.quantiles(stored, n=100, method="inclusive")
    assert window["0.0"] == min(stored)
    assert window["0.5"] == pytest.approx(statistics.median(stored), rel=1e-12)
    assert window["0.9"] == pytest.approx(percentiles[89], rel=1e-12)
    assert window["0.99"] == pytest.approx(percentiles[98], rel=1e-12)
    assert window["1.0"] == max(stored)


def test_ping_less_module_has_no_ping_series(full: tuple[Scrape, Stamps]) -> None:
    result, _ = full
    names = result.names("connect-c")
    assert "probe_success" in names and "wsmon_connect_duration_seconds_count" in names
    assert not {n for n in names if "ping_pong" in n}


def test_probe_target_has_no_persistent_series(full: tuple[Scrape, Stamps]) -> None:
    result, _ = full
    names = result.names("probe-a")
    for name in (
        "wsmon_connection_state",
        "wsmon_reconnects_total",
        "wsmon_connected_since_timestamp_seconds",
        "wsmon_messages_received_total",
        "wsmon_last_message_timestamp_seconds",
    ):
        assert name not in names


def test_failed_latest_probe(clock: Clock) -> None:
    store = Store()
    state = store.add(PROBE, window=300.0, sample_interval=PROBE.interval)
    state.record_probe(PROBE_RESULTS[3], mono())  # refused
    result = scrape(store)
    t = "probe-a"
    assert result.get("probe_success", **L(t)) == 0.0
    assert result.get("probe_websocket_up", **L(t)) == 0.0
    assert result.get("probe_websocket_ping_pong_success", **L(t)) == 0.0
    assert result.get("probe_websocket_failure_info", **L(t, reason="refused")) == 1.0
    assert "probe_websocket_connection_duration_seconds" not in result.names(t)
    assert "wsmon_ping_pong_window_seconds" not in result.names(t)  # no samples: no quantiles
    assert result.get("wsmon_connect_duration_seconds_count", **L(t)) == 0.0
    assert result.get("wsmon_probes_total", **L(t, result="success", reason="none")) == 0.0


def test_target_without_results_yet(clock: Clock) -> None:
    store = Store()
    store.add(PROBE, window=300.0, sample_interval=PROBE.interval)
    result = scrape(store)
    names = result.names("probe-a")
    assert not {n for n in names if n.startswith("probe_")}
    assert result.get("wsmon_probes_total", **L("probe-a", result="success", reason="none")) == 0.0
    assert result.get("wsmon_ping_pong_duration_seconds_count", **L("probe-a")) == 0.0


def test_empty_store(clock: Clock) -> None:
    result = scrape(Store())
    assert result.text == "" and result.metric_text == ""


# --- persistent mode ----------------------------------------------------------------------------


def test_persistent_series(full: tuple[Scrape, Stamps]) -> None:
    result, stamps = full
    t = "stream-b"
    assert result.get("probe_success", **L(t)) == 1.0
    assert result.get("probe_websocket_up", **L(t)) == 1.0
    assert result.get("probe_websocket_connection_duration_seconds", **L(t)) == 0.02
    assert result.get("probe_websocket_ping_pong_success", **L(t)) == 1.0
    assert result.get("probe_websocket_ping_pong_duration_seconds", **L(t)) == 0.004
    assert not list(result.series("probe_websocket_failure_info", t))  # healthy again
    assert result.get("wsmon_reconnects_total", **L(t)) == 1.0
    assert result.get("wsmon_connected_since_timestamp_seconds", **L(t)) == stamps.connected_since
    assert result.get("wsmon_messages_received_total", **L(t)) == 3.0
    assert result.get("wsmon_last_message_timestamp_seconds", **L(t)) == stamps.last_message
    counts = {(lb["result"], lb["reason"]): v for lb, v in result.series("wsmon_probes_total", t)}
    assert counts == {("success", "none"): 3.0, ("failure", "ping_timeout"): 1.0}


def test_message_value_and_changed_timestamp(full: tuple[Scrape, Stamps]) -> None:
    result, stamps = full
    assert result.get("wsmon_message_value", **L("stream-b", name="block")) == 101.0
    changed = result.get("wsmon_message_value_changed_timestamp_seconds", **L("stream-b", name="block"))
    assert changed == stamps.value_changed


def test_connection_state_one_hot(full: tuple[Scrape, Stamps]) -> None:
    result, _ = full
    state = {lb["state"]: v for lb, v in result.series("wsmon_connection_state", "stream-b")}
    assert state == {"connecting": 0.0, "connected": 1.0, "disconnected": 0.0}


def _stream_state(store: Store) -> TargetState:
    return store.add(STREAM, window=300.0, sample_interval=1.0)


@pytest.mark.parametrize("current", list(ConnectionState))
def test_connection_state_is_one_hot_in_every_state(clock: Clock, current: ConnectionState) -> None:
    store = Store()
    state = _stream_state(store)
    if current is ConnectionState.CONNECTED:
        state.record_connected(0.01)
    elif current is ConnectionState.CONNECTING:
        state.state = ConnectionState.CONNECTING
    else:
        state.record_connected(0.01)
        state.record_disconnected()
    result = scrape(store)
    values = {lb["state"]: v for lb, v in result.series("wsmon_connection_state", "stream-b")}
    assert values == {s.value: float(s is current) for s in ConnectionState}
    assert sum(values.values()) == 1.0
    assert result.get("probe_websocket_up", **L("stream-b")) == float(current is ConnectionState.CONNECTED)


def test_persistent_before_first_connection(clock: Clock) -> None:
    store = Store()
    _stream_state(store)
    result = scrape(store)
    t = "stream-b"
    assert result.get("probe_success", **L(t)) == 0.0
    assert result.get("wsmon_reconnects_total", **L(t)) == 0.0
    assert result.get("wsmon_messages_received_total", **L(t)) == 0.0
    names = result.names(t)
    assert "wsmon_connected_since_timestamp_seconds" not in names
    assert "wsmon_last_message_timestamp_seconds" not in names
    assert "wsmon_message_value" not in names


def test_persistent_disconnected_after_failure(clock: Clock) -> None:
    store = Store()
    state = _stream_state(store)
    state.record_connected(0.01)
    state.record_pong(0.002, mono())
    state.record_failure(Reason.CLOSED, "the server closed the WebSocket (code 1011)")
    state.record_disconnected()
    result = scrape(store)
    t = "stream-b"
    assert result.get("probe_success", **L(t)) == 0.0
    assert result.get("probe_websocket_up", **L(t)) == 0.0
    assert result.get("probe_websocket_ping_pong_success", **L(t)) == 0.0
    assert result.get("probe_websocket_failure_info", **L(t, reason="closed")) == 1.0
    assert "wsmon_connected_since_timestamp_seconds" not in result.names(t)
    assert "probe_websocket_connection_duration_seconds" not in result.names(t)


@pytest.mark.parametrize("reconnects", [0, 1, 2, 5])
def test_reconnects_count_connections_after_the_first(clock: Clock, reconnects: int) -> None:
    store = Store()
    state = _stream_state(store)
    for _ in range(reconnects + 1):
        state.record_connected(0.01)
        state.record_disconnected()
    assert scrape(store).get("wsmon_reconnects_total", **L("stream-b")) == float(reconnects)


@pytest.mark.parametrize(
    ("updates", "value", "changed_at"),
    [
        # (wall-clock time, value) recorded in order → exported value and its changed timestamp
        ([(10.0, 5.0)], 5.0, 10.0),
        ([(10.0, 5.0), (20.0, 5.0)], 5.0, 10.0),  # the same value: no change
        ([(10.0, 5.0), (20.0, 6.0)], 6.0, 20.0),
        ([(10.0, 5.0), (20.0, 6.0), (30.0, 6.0), (40.0, 6.0)], 6.0, 20.0),
        ([(10.0, 5.0), (20.0, 6.0), (30.0, 5.0)], 5.0, 30.0),  # back to an older value is a change
        ([(10.0, 0.0), (20.0, 0.0)], 0.0, 10.0),
        ([(10.0, 1e20), (20.0, 1e20 + 1)], 1e20, 10.0),  # equal as floats
    ],
)
def test_value_changed_timestamp_moves_only_on_change(
    clock: Clock, updates: list[tuple[float, float]], value: float, changed_at: float
) -> None:
    store = Store()
    state = _stream_state(store)
    for at, v in updates:
        clock.now = at
        state.record_value("block", v)
    result = scrape(store)
    assert result.get("wsmon_message_value", **L("stream-b", name="block")) == value
    assert result.get("wsmon_message_value_changed_timestamp_seconds", **L("stream-b", name="block")) == changed_at


def test_values_by_name(clock: Clock) -> None:
    store = Store()
    state = _stream_state(store)
    clock.now = 100.0
    state.record_value("block", 7.0)
    clock.now = 200.0
    state.record_value("peers", 25.0)
    result = scrape(store)
    assert {lb["name"]: v for lb, v in result.series("wsmon_message_value", "stream-b")} == {
        "block": 7.0,
        "peers": 25.0,
    }
    changed = result.series("wsmon_message_value_changed_timestamp_seconds", "stream-b")
    assert {lb["name"]: v for lb, v in changed} == {"block": 100.0, "peers": 200.0}


def test_probe_step_values_are_exported(clock: Clock) -> None:
    store = Store()
    state = store.add(PROBE, window=300.0, sample_interval=PROBE.interval)
    clock.now = 50.0
    step = StepResult(index=0, success=True, duration=0.003, value_name="block", value=436.0)
    result_ = ProbeResult(success=True, duration=0.01, timeout=10.0, up=True, phases=PHASES_OK, steps=(step,))
    state.record_probe(result_, mono())
    result = scrape(store)
    assert result.get("wsmon_message_value", **L("probe-a", name="block")) == 436.0
    assert result.get("wsmon_message_value_changed_timestamp_seconds", **L("probe-a", name="block")) == 50.0
    assert result.get("probe_websocket_message_value", **L("probe-a", name="block")) == 436.0
    assert result.get("probe_websocket_message_success", **L("probe-a", step="1")) == 1.0


def test_ping_less_persistent_target_healthy_after_reconnect_has_no_failure_info(clock: Clock) -> None:
    target = Target(name="connect-c", url=CONNECT_URL, module=BUILTIN_MODULES["connect"], mode=Mode.PERSISTENT)
    store = Store()
    state = store.add(target, window=300.0, sample_interval=1.0)
    state.record_connected(0.01)
    state.record_failure(Reason.CLOSED, "the server closed the WebSocket (code 1011)")
    state.record_disconnected()
    state.record_connected(0.01)  # back, and nothing wrong since
    result = scrape(store)
    assert result.get("probe_success", **L("connect-c")) == 1.0
    assert not list(result.series("probe_websocket_failure_info", "connect-c"))


# --- the two encoders, and the text format ------------------------------------------------------


def test_both_encoders_agree(full: tuple[Scrape, Stamps]) -> None:
    result, _ = full
    assert sorted(map(_key, result.samples)) == sorted(map(_key, result.metric_samples))
    assert len(result.samples) == len(result.metric_samples) > 100


def test_metric_sink_types(full: tuple[Scrape, Stamps]) -> None:
    result, _ = full
    _, types, _ = _parse(result.metric_text)
    assert types == EXPECTED_TYPES


def test_counters_are_typed_counters_in_metrics_text(full: tuple[Scrape, Stamps]) -> None:
    result, _ = full
    for name in ("wsmon_probes_total", "wsmon_reconnects_total", "wsmon_messages_received_total"):
        assert result.types.get(name) == "counter", name
        assert result.families[name] == "counter", name


def test_parsed_family_types(full: tuple[Scrape, Stamps]) -> None:
    result, _ = full
    for name, kind in EXPECTED_TYPES.items():
        if kind == "gauge":
            assert result.families[name] == "gauge", name
        elif kind == "histogram":
            for suffix in ("_bucket", "_sum", "_count"):
                assert result.families[name + suffix] == "histogram", name
        elif kind == "summary":
            for suffix in ("", "_sum", "_count"):
                assert result.families[name + suffix] == "summary", name


def test_no_nan_or_negative_values(full: tuple[Scrape, Stamps]) -> None:
    result, _ = full
    for name, labels, value in result.samples:
        assert not math.isnan(value) and value >= 0.0, (name, labels, value)


def test_window_quantiles_gone_once_samples_are_older_than_the_window(clock: Clock) -> None:
    store = Store()
    state = _stream_state(store)  # a 300 s window
    state.record_connected(0.01)
    state.record_pong(0.002, MONO - 301.0)  # the last pong came 301 s ago: out of the window
    result = scrape(store)
    assert not list(result.series("wsmon_ping_pong_window_seconds", "stream-b"))
    assert result.get("wsmon_ping_pong_duration_seconds_count", **L("stream-b")) == 1.0  # cumulative: kept
    assert result.get("wsmon_ping_pong_window_seconds_count", **L("stream-b")) == 1.0  # the summary's too
    assert result.get("wsmon_ping_pong_window_seconds_sum", **L("stream-b")) == 0.002


def test_window_keeps_samples_within_the_window(clock: Clock) -> None:
    store = Store()
    state = _stream_state(store)
    state.record_pong(0.002, MONO - 300.0)  # exactly 300 s ago: still in
    state.record_pong(0.004, MONO)
    result = scrape(store)
    window = {lb["quantile"]: v for lb, v in result.series("wsmon_ping_pong_window_seconds", "stream-b")}
    assert window == {
        "0.0": f32(0.002),
        "0.5": pytest.approx(0.003),
        "0.9": pytest.approx(0.0038),
        "0.99": pytest.approx(0.00398),
        "1.0": f32(0.004),
    }


def test_label_values_are_escaped(clock: Clock) -> None:
    target = Target(
        name="esc",
        url=CONNECT_URL,
        module=BUILTIN_MODULES["ping"],
        labels=(("note", 'a "quoted" back\\slash\nnewline'),),
    )
    store = Store()
    store.add(target, window=300.0, sample_interval=target.interval).record_probe(ok(0.001), mono())
    result = scrape(store)
    value = 'a "quoted" back\\slash\nnewline'
    assert result.get("probe_success", target="esc", note=value) == 1.0
    assert sorted(map(_key, result.samples)) == sorted(map(_key, result.metric_samples))
