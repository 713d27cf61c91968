"""Remote write 1.0 bodies (wsmon.metrics.remote_write), read back with the protobuf package."""

from __future__ import annotations

import math

import cramjam
import pytest

from tests.remote_write_pb import WriteRequest
from wsmon.metrics.histogram import LatencyHistogram
from wsmon.metrics.remote_write import RemoteWriteSink

FAMILIES = {
    "probe_success": ("gauge", "Whether the probe succeeded"),
    "wsmon_probes": ("counter", "Probes done"),
    "wsmon_ping_pong_duration_seconds": ("histogram", "Round trips"),
}
T = 1_764_680_000_123


def decode(body: bytes) -> list[tuple[list[tuple[str, str]], list[tuple[float, int]]]]:
    request = WriteRequest()
    request.ParseFromString(bytes(cramjam.snappy.decompress_raw(body)))
    return [
        ([(label.name, label.value) for label in series.labels], [(s.value, s.timestamp) for s in series.samples])
        for series in request.timeseries
    ]


@pytest.mark.parametrize(
    ("name", "labels", "value", "timestamp"),
    [
        ("up", (), 1.0, T),
        ("up", (("job", "wsmon"),), 0.0, T),
        ("x", (("b", "2"), ("a", "1"), ("Zone", "eu")), -1.5, T),  # sorted on the way out
        ("x", (("v", "é" * 200),), 1e300, T),  # a series longer than 127 bytes: 2-byte lengths
        ("x", (("v", "w" * 20_000),), 2.0, T),  # longer than 16383 bytes: 3-byte lengths
        ("x", (), 3.0, 0),  # no timestamp field at all
        ("x", (), math.inf, T),
    ],
)
def test_one_series(name: str, labels: tuple[tuple[str, str], ...], value: float, timestamp: int) -> None:
    sink = RemoteWriteSink({name: ("gauge", "")}, timestamp)
    sink.target(labels)
    sink.sample(name, value)
    assert decode(sink.body()) == [(sorted((("__name__", name), *labels)), [(value, timestamp)])]


def test_nan_survives() -> None:
    sink = RemoteWriteSink({"x": ("gauge", "")}, T)
    sink.sample("x", math.nan)
    [(_, [(value, _)])] = decode(sink.body())
    assert math.isnan(value)


def test_the_sink_writes_what_the_text_sink_would() -> None:
    sink = RemoteWriteSink(FAMILIES, T, extra=(("job", "wsmon"),))
    sink.target((("target", "node-1"), ("chain", "eth")))
    sink.sample("probe_success", 1)
    sink.sample("wsmon_probes", 7, (("result", "success"), ("reason", "none")))
    histogram = LatencyHistogram()
    histogram.observe(0.003)
    histogram.observe(0.2)
    sink.histogram("wsmon_ping_pong_duration_seconds", histogram)
    sink.target((("target", "node-2"),))
    sink.sample("probe_success", 0)
    series = decode(sink.body())
    assert sink.series == len(series)
    by_name = {tuple(labels): samples for labels, samples in series}
    base = [("chain", "eth"), ("job", "wsmon"), ("target", "node-1")]
    assert by_name[tuple(sorted([("__name__", "probe_success"), *base]))] == [(1.0, T)]
    key = tuple(sorted([("__name__", "wsmon_probes_total"), ("reason", "none"), ("result", "success"), *base]))
    assert by_name[key] == [(7.0, T)]
    buckets = {
        dict(labels)["le"]: samples[0][0]
        for labels, samples in series
        if dict(labels)["__name__"] == "wsmon_ping_pong_duration_seconds_bucket"
    }
    assert buckets == {le: float(count) for le, count in histogram.cumulative()}
    assert buckets["+Inf"] == 2.0
    assert by_name[tuple(sorted([("__name__", "wsmon_ping_pong_duration_seconds_count"), *base]))] == [(2.0, T)]
    [total] = [s for labels, s in series if dict(labels)["__name__"] == "wsmon_ping_pong_duration_seconds_sum"]
    assert total[0][0] == pytest.approx(0.203)
    other = tuple(sorted([("__name__", "probe_success"), ("job", "wsmon"), ("target", "node-2")]))
    assert by_name[other] == [(0.0, T)]
    for labels, _ in series:
        assert labels == sorted(labels)


def test_an_empty_sink_is_an_empty_request() -> None:
    assert decode(RemoteWriteSink(FAMILIES, T).body()) == []


@pytest.mark.parametrize(
    "target",
    [
        (("target", "a"),),
        (("target", "a"), ("Zone", "eu"), ("_x", "1"), ("zz", "2")),  # before and after __name__ and le
        (("target", "a"), ("m", "between le and reason")),
        (),
    ],
)
def test_the_sink_orders_labels_like_a_plain_sort(target: tuple[tuple[str, str], ...]) -> None:
    """Series by series, the sink's templates give the order sorting each label set gives."""
    sink = RemoteWriteSink(FAMILIES, T, extra=(("job", "wsmon"),))
    sink.target(target)
    expected = []
    calls: list[tuple[str, float, tuple[tuple[str, str], ...]]] = [
        ("probe_success", 1.0, ()),
        ("wsmon_probes", 3.0, (("result", "failure"), ("reason", "closed"))),
        ("wsmon_probes", 4.0, (("result", "success"), ("reason", "none"))),
        ("probe_success", 0.0, (("quantile", "0.5"),)),
    ]
    for family, value, extra in calls:
        sink.sample(family, value, extra)
        name = f"{family}_total" if family == "wsmon_probes" else family
        expected.append((sorted((("__name__", name), *target, ("job", "wsmon"), *extra)), [(value, T)]))
    histogram = LatencyHistogram()
    histogram.observe(0.01)
    sink.histogram("wsmon_ping_pong_duration_seconds", histogram)
    for le, count in histogram.cumulative():
        labels = (("__name__", "wsmon_ping_pong_duration_seconds_bucket"), *target, ("job", "wsmon"), ("le", le))
        expected.append((sorted(labels), [(float(count), T)]))
    for suffix, value in (("_sum", histogram.sum), ("_count", 1.0)):
        labels = (("__name__", f"wsmon_ping_pong_duration_seconds{suffix}"), *target, ("job", "wsmon"))
        expected.append((sorted(labels), [(value, T)]))
    assert decode(sink.body()) == expected
