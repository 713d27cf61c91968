"""LatencyHistogram (wsmon.metrics.histogram): Prometheus bucket semantics (le = less or equal)."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from wsmon.metrics.histogram import LATENCY_BUCKETS, LatencyHistogram

LES = [repr(b) for b in LATENCY_BUCKETS] + ["+Inf"]


def _cumulative(values: list[float]) -> dict[str, int]:
    histogram = LatencyHistogram()
    for value in values:
        histogram.observe(value)
    return dict(histogram.cumulative())


def _first_bucket(value: float) -> str:
    """The le of the smallest bucket holding ``value``, by the definition (value <= le)."""
    return next((repr(b) for b in LATENCY_BUCKETS if value <= b), "+Inf")


def test_bucket_bounds() -> None:
    assert list(LATENCY_BUCKETS) == sorted(set(LATENCY_BUCKETS))
    assert LATENCY_BUCKETS[0] == 0.0005 and LATENCY_BUCKETS[-1] == 10.0
    assert [le for le, _ in LatencyHistogram().cumulative()] == LES


def test_le_labels_as_prometheus_writes_them() -> None:
    assert LES == [
        "0.0005",
        "0.001",
        "0.0025",
        "0.005",
        "0.01",
        "0.025",
        "0.05",
        "0.1",
        "0.25",
        "0.5",
        "1.0",
        "2.5",
        "5.0",
        "10.0",
        "+Inf",
    ]


@pytest.mark.parametrize(
    ("value", "le"),
    [
        (0.0, "0.0005"),
        (0.0001, "0.0005"),
        (0.0005, "0.0005"),  # equal to a bound: in that bucket
        (0.00050001, "0.001"),
        (0.001, "0.001"),
        (0.0024999, "0.0025"),
        (0.0025, "0.0025"),
        (0.005, "0.005"),
        (0.01, "0.01"),
        (0.0100001, "0.025"),
        (0.025, "0.025"),
        (0.05, "0.05"),
        (0.1, "0.1"),
        (0.25, "0.25"),
        (0.5, "0.5"),
        (0.75, "1.0"),
        (1.0, "1.0"),
        (2.5, "2.5"),
        (5.0, "5.0"),
        (9.999, "10.0"),
        (10.0, "10.0"),
        (10.000001, "+Inf"),
        (60.0, "+Inf"),
        (math.inf, "+Inf"),
    ],
)
def test_single_value_bucket(value: float, le: str) -> None:
    assert _first_bucket(value) == le  # the table agrees with the definition
    cumulative = _cumulative([value])
    index = LES.index(le)
    # 0 in every bucket below, 1 from its bucket on (cumulative counts).
    assert [cumulative[x] for x in LES] == [0] * index + [1] * (len(LES) - index)


@pytest.mark.parametrize("bound", LATENCY_BUCKETS)
def test_every_bound_is_inclusive(bound: float) -> None:
    cumulative = _cumulative([bound])
    assert cumulative[repr(bound)] == 1
    below = LES[LES.index(repr(bound)) - 1] if bound != LATENCY_BUCKETS[0] else None
    if below is not None:
        assert cumulative[below] == 0


def test_empty() -> None:
    histogram = LatencyHistogram()
    assert histogram.count == 0
    assert histogram.sum == 0.0
    assert list(histogram.cumulative()) == [(le, 0) for le in LES]


def test_cumulative_counts_sum_and_count() -> None:
    values = [0.0003, 0.0005, 0.0007, 0.002, 0.02, 0.02, 0.3, 1.0, 4.0, 12.0, 30.0]
    histogram = LatencyHistogram()
    for value in values:
        histogram.observe(value)
    assert dict(histogram.cumulative()) == {
        "0.0005": 2,
        "0.001": 3,
        "0.0025": 4,
        "0.005": 4,
        "0.01": 4,
        "0.025": 6,
        "0.05": 6,
        "0.1": 6,
        "0.25": 6,
        "0.5": 7,
        "1.0": 8,
        "2.5": 8,
        "5.0": 9,
        "10.0": 9,
        "+Inf": 11,
    }
    assert histogram.count == 11
    assert histogram.sum == pytest.approx(sum(values))


@given(st.lists(st.floats(min_value=0.0, max_value=100.0, allow_nan=False), max_size=200))
def test_matches_the_definition(values: list[float]) -> None:
    histogram = LatencyHistogram()
    for value in values:
        histogram.observe(value)
    cumulative = list(histogram.cumulative())
    for le, count in cumulative:
        bound = math.inf if le == "+Inf" else float(le)
        assert count == sum(1 for v in values if v <= bound)
    counts = [count for _, count in cumulative]
    assert counts == sorted(counts)  # monotonic
    assert cumulative[-1] == ("+Inf", len(values)) and histogram.count == len(values)
    assert histogram.sum == pytest.approx(math.fsum(values), rel=1e-9, abs=1e-12)


def test_size_does_not_grow_with_observations() -> None:
    histogram = LatencyHistogram()
    before = histogram._counts.buffer_info()
    for i in range(10_000):
        histogram.observe(i / 1000)
    assert histogram._counts.buffer_info()[1] == before[1] == len(LES)
    assert histogram.count == 10_000
