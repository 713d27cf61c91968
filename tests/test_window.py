"""Rolling-window quantiles (wsmon.continuous.window): the quantile definition and the bounded ring."""

from __future__ import annotations

import math
import random
import statistics
import struct
import sys
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from wsmon.continuous import window as window_module
from wsmon.continuous.window import RollingWindow, quantile


def f32(x: float) -> float:
    """``x`` as the window stores it (float32), read back as a Python float."""
    return float(struct.unpack("f", struct.pack("f", x))[0])


# --- quantile() -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("ordered", "q", "expected"),
    [
        ([5.0], 0.0, 5.0),
        ([5.0], 0.5, 5.0),
        ([5.0], 1.0, 5.0),
        ([1.0, 2.0], 0.5, 1.5),
        ([10.0, 20.0], 0.99, 19.9),
        ([10.0, 20.0], 0.9, 19.0),
        ([1.0, 2.0, 3.0, 4.0], 0.0, 1.0),  # 0 is the minimum
        ([1.0, 2.0, 3.0, 4.0], 0.25, 1.75),  # position 0.75
        ([1.0, 2.0, 3.0, 4.0], 0.5, 2.5),  # position 1.5
        ([1.0, 2.0, 3.0, 4.0], 0.9, 3.7),  # position 2.7
        ([1.0, 2.0, 3.0, 4.0], 1.0, 4.0),  # 1 is the maximum
        ([1.0, 2.0, 3.0, 4.0, 5.0], 0.5, 3.0),  # odd count: the middle sample
        ([1.0, 2.0, 3.0, 4.0, 5.0], 0.75, 4.0),
        ([0.0, 0.0, 0.0, 100.0], 0.99, 97.0),  # position 2.97
        ([0.001, 0.002, 0.004, 0.008, 0.1], 0.9, 0.0632),  # position 3.6: 0.008 + 0.6 × 0.092
        ([3.0, 3.0, 3.0], 0.5, 3.0),
        ([float(i) for i in range(1, 102)], 0.9, 91.0),  # 101 samples: position 90 exactly
        ([float(i) for i in range(1, 102)], 0.99, 100.0),
        ([float(i) for i in range(1, 101)], 0.99, 99.01),  # 100 samples: position 98.01
        ([float(i) for i in range(1, 101)], 0.5, 50.5),
    ],
)
def test_quantile_hand_computed(ordered: list[float], q: float, expected: float) -> None:
    assert quantile(ordered, q) == pytest.approx(expected, rel=1e-12, abs=1e-15)


def test_quantile_of_nothing_is_nan() -> None:
    for q in (0.0, 0.5, 1.0):
        assert math.isnan(quantile([], q))


samples_strategy = st.lists(
    st.floats(min_value=0.0, max_value=60.0, allow_nan=False, allow_infinity=False), min_size=2, max_size=300
)


@given(samples_strategy, st.integers(min_value=2, max_value=100))
def test_quantile_matches_statistics_inclusive(samples: list[float], n: int) -> None:
    ordered = sorted(samples)
    reference = statistics.quantiles(samples, n=n, method="inclusive")
    ours = [quantile(ordered, i / n) for i in range(1, n)]
    assert ours == pytest.approx(reference, rel=1e-9, abs=1e-12)


@given(samples_strategy)
def test_quantile_extremes_are_min_and_max(samples: list[float]) -> None:
    ordered = sorted(samples)
    assert quantile(ordered, 0.0) == min(samples)
    assert quantile(ordered, 1.0) == max(samples)


@given(samples_strategy, st.floats(0.0, 1.0), st.floats(0.0, 1.0))
def test_quantile_monotonic_and_bounded(samples: list[float], a: float, b: float) -> None:
    ordered = sorted(samples)
    low, high = sorted((a, b))
    assert min(samples) <= quantile(ordered, low) <= quantile(ordered, high) + 1e-12
    assert quantile(ordered, high) <= max(samples)


# --- RollingWindow ----------------------------------------------------------------------------


@given(samples_strategy, st.integers(min_value=2, max_value=20))
def test_window_quantiles_match_statistics_of_float32_samples(samples: list[float], n: int) -> None:
    window = RollingWindow(span=600.0, capacity=len(samples))
    for i, value in enumerate(samples):
        window.add(value, now=100.0 + i)  # one a second: all within the 600 s span
    now = 100.0 + len(samples) - 1
    stored = [f32(v) for v in samples]
    assert window.samples(now) == stored
    qs = [i / n for i in range(1, n)]
    reference = statistics.quantiles(stored, n=n, method="inclusive")
    assert window.quantiles(now, qs) == pytest.approx(reference, rel=1e-9, abs=1e-12)
    assert window.quantiles(now, [0.0, 1.0]) == [min(stored), max(stored)]


def test_window_stores_float32() -> None:
    window = RollingWindow(span=60.0, capacity=4)
    window.add(0.1, now=1.0)
    assert window.samples(1.0) == [f32(0.1)]
    assert window.samples(1.0)[0] != 0.1
    assert window.samples(1.0)[0] == pytest.approx(0.1, rel=1e-7)


def test_empty_window() -> None:
    window = RollingWindow(span=60.0, capacity=10)
    assert window.samples(5.0) == []
    assert window.quantiles(5.0, [0.0, 0.5, 1.0]) is None


@pytest.mark.parametrize(
    ("now", "expected"),
    [
        # samples 1.0 … 20.0 taken at t = 1 … 20 s, span 10 s: kept while at most 10 s old
        (20.0, [float(v) for v in range(10, 21)]),  # t = 10 is exactly 10 s old: still in
        (20.05, [float(v) for v in range(10, 21)]),  # same decisecond
        (20.1, [float(v) for v in range(11, 21)]),
        (25.0, [float(v) for v in range(15, 21)]),
        (29.9, [20.0]),  # 0.1 s short of 10 s after the last one, …
        (30.0, [20.0]),  # … exactly 10 s after it: still in
        (30.1, []),
        (1000.0, []),
    ],
)
def test_window_expiry_by_time(now: float, expected: list[float]) -> None:
    window = RollingWindow(span=10.0, capacity=100)
    for t in range(1, 21):
        window.add(float(t), now=float(t))
    assert window.samples(now) == expected


def test_window_expiry_on_add() -> None:
    window = RollingWindow(span=5.0, capacity=100)
    for t in range(10):
        window.add(1.0, now=float(t))
    window.add(2.0, now=100.0)  # everything before is long gone
    assert window.samples(100.0) == [2.0]
    assert window.quantiles(100.0, [0.0, 0.5, 1.0]) == [2.0, 2.0, 2.0]


@pytest.mark.parametrize("capacity", [1, 2, 5, 64])
def test_window_capacity_bound_drops_the_oldest(capacity: int) -> None:
    window = RollingWindow(span=3600.0, capacity=capacity)
    for i in range(3 * capacity + 1):
        window.add(float(i), now=10.0)  # a burst at one instant: only the capacity bounds it
        assert len(window._values) <= capacity
    assert window.samples(10.0) == [float(i) for i in range(2 * capacity + 1, 3 * capacity + 1)]


def test_window_grows_only_as_needed() -> None:
    window = RollingWindow(span=300.0, capacity=1000)
    for i in range(10):
        window.add(float(i), now=float(i * 30))  # a probe every 30 s: 11 fit in 300 s
    assert len(window._values) == len(window._times) == 10
    assert window.samples(270.0) == [float(i) for i in range(10)]


def test_window_grows_after_wrapping_keeping_order() -> None:
    window = RollingWindow(span=3.0, capacity=10)
    for t in range(4):  # 4 slots, t = 0 … 3
        window.add(float(t), now=float(t))
    window.add(5.0, now=5.0)  # t = 0, 1 expire; the new sample wraps to slot 0
    window.add(5.5, now=5.0)  # slot 1: the ring is full again and starts mid-array
    assert len(window._values) == 4
    assert list(window._values) == [5.0, 5.5, 2.0, 3.0]
    assert window.samples(5.0) == [2.0, 3.0, 5.0, 5.5]
    window.add(5.75, now=5.0)  # full but below capacity: grows, oldest first again
    assert len(window._values) == 5
    assert list(window._values) == [2.0, 3.0, 5.0, 5.5, 5.75]
    assert window.samples(5.0) == [2.0, 3.0, 5.0, 5.5, 5.75]


def test_window_capacity_bound_after_wrapping() -> None:
    window = RollingWindow(span=7.0, capacity=3)
    window.add(0.0, now=1000.0)
    window.add(1.0, now=1007.0)
    window.samples(1007.1)  # 0.0 expires: the ring's head moves to slot 1
    window.add(2.0, now=1007.1)  # wraps to slot 0
    window.add(3.0, now=1007.1)  # ring full (2 slots) below capacity (3): grows
    assert window.samples(1007.1) == [1.0, 2.0, 3.0]
    for _ in range(100):  # a burst: the capacity must still bound it
        window.add(9.0, now=1007.1)
    assert window.samples(1007.1) == [9.0, 9.0, 9.0]


class _Model:
    """The window's contract, naively: a deque bounded by capacity, expired by age."""

    def __init__(self, span: float, capacity: int) -> None:
        self.span_ticks = int(span * 10)
        self.items: deque[tuple[float, int]] = deque(maxlen=capacity)

    def _expire(self, now: float) -> None:
        oldest = int(now * 10) - self.span_ticks
        while self.items and self.items[0][1] < oldest:
            self.items.popleft()

    def add(self, value: float, now: float) -> None:
        self._expire(now)
        self.items.append((f32(value), int(now * 10)))

    def samples(self, now: float) -> list[float]:
        self._expire(now)
        return [v for v, _ in self.items]


@given(
    st.integers(min_value=1, max_value=30),
    st.integers(min_value=1, max_value=12),
    st.lists(
        st.tuples(
            st.booleans(),  # add (True) or read (False)
            st.floats(min_value=0.0, max_value=5.0, allow_nan=False),  # the value
            # time step; the last ones cross the 16-bit range of a short window's times
            st.sampled_from([0.0, 0.0, 0.1, 0.5, 1.0, 2.0, 7.0, 40.0, 3300.0, 6600.0]),
        ),
        max_size=120,
    ),
)
@example(  # the shortest case Hypothesis found for a bug now fixed: it stays a regression test
    span=7,
    capacity=3,
    ops=[(True, 0.0, 0.0), (True, 1.0, 7.0), (False, 0.0, 0.1), (True, 0.0, 0.0), (True, 0.0, 0.0)],
)
def test_window_matches_a_naive_model(span: int, capacity: int, ops: list[tuple[bool, float, float]]) -> None:
    window, model = RollingWindow(float(span), capacity), _Model(float(span), capacity)
    now = 1000.0
    for is_add, value, step in ops:
        now += step
        if is_add:
            window.add(value, now)
            model.add(value, now)
        else:
            assert window.samples(now) == model.samples(now)
        assert len(window._values) == len(window._times) <= capacity
    assert window.samples(now) == model.samples(now)


@pytest.mark.parametrize(("span", "typecode"), [(300.0, "H"), (3000.0, "H"), (3600.0, "I"), (604_800.0, "I")])
def test_times_take_16_bits_for_windows_up_to_50_minutes(span: float, typecode: str) -> None:
    window = RollingWindow(span, capacity=8)
    start = 40_000_000.0  # 463 days of uptime: far past 16 bits of deciseconds
    for i in range(20):
        window.add(float(i), now=start + i * span / 4)  # several times round the 16-bit range
    assert window._times.typecode == typecode
    assert window.samples(start + 19 * span / 4) == [15.0, 16.0, 17.0, 18.0, 19.0]
    assert window.samples(start + 19 * span / 4 + span) == [19.0]


def test_long_run_memory_stays_flat() -> None:
    """A million pings at 1/s (11.5 days) with an injected clock: the arrays stop growing."""
    span, capacity = 300.0, 376  # what the Store sizes for a 5 min window, 1 s ping interval
    window = RollingWindow(span, capacity)
    sizes: list[int] = []
    for i in range(1_000_000):
        window.add(0.001 * (i % 97), now=float(i))
        if i % 1000 == 0:
            assert len(window._values) <= capacity and len(window._times) <= capacity
            sizes.append(sys.getsizeof(window._values) + sys.getsizeof(window._times))
    assert len(window._values) <= capacity and len(window._times) <= capacity
    assert max(sizes) <= 2 * 6 * capacity + 512  # 6 bytes a sample, growth slack and headers
    assert max(sizes[len(sizes) // 2 :]) <= max(sizes[:2])  # flat after the first minutes
    samples = window.samples(999_999.0)
    assert len(samples) == 301  # the last 300 s at 1/s, both ends included
    expected = [f32(0.001 * (i % 97)) for i in range(999_699, 1_000_000)]
    assert samples == expected


def test_long_run_with_jitter_matches_the_model() -> None:
    """Pings at 1/s whose pongs come back 0 … 0.5 s late, as on a real network, for a day."""
    rng = random.Random(20240601)
    span, capacity = 300.0, 376
    window, model = RollingWindow(span, capacity), _Model(span, capacity)
    now = 0.0
    for i in range(86_400):
        now = i + rng.uniform(0.0, 0.5)
        value = rng.uniform(0.0005, 0.05)
        window.add(value, now)
        model.add(value, now)
        if i % 600 == 0:
            assert window.samples(now) == model.samples(now), i
            assert len(window.samples(now)) <= capacity
    assert window.samples(now) == model.samples(now)


QUANTILES = (0.0, 0.25, 0.5, 0.9, 0.99, 0.999, 1.0)


@contextmanager
def numpy_from(samples: int) -> Iterator[None]:
    """Within it, windows of ``samples`` or more are sorted by numpy (0: every window). Not a
    monkeypatch fixture: hypothesis tests take none that is function-scoped."""
    real = window_module.NUMPY_FROM
    window_module.NUMPY_FROM = samples
    try:
        yield
    finally:
        window_module.NUMPY_FROM = real


@given(
    st.lists(st.floats(min_value=0.0, max_value=30.0, width=32), min_size=1, max_size=300),
    st.integers(min_value=0, max_value=400),  # where the ring starts: the live samples may wrap
    st.sampled_from([0, 10**9]),  # numpy for every window, or for none
)
def test_both_sorts_give_the_quantiles_of_the_sorted_samples(samples: list[float], skip: int, threshold: int) -> None:
    """A window is sorted by numpy from window.NUMPY_FROM samples, by a list below: the same figures."""
    with numpy_from(threshold):
        window = RollingWindow(span=10_000.0, capacity=len(samples))
        for i in range(skip):  # turn the ring over: its head lands anywhere
            window.add(0.0, now=1_000.0 + i * 0.001)
        for value in samples:
            window.add(value, now=1_001.0)
        ordered = sorted(f32(v) for v in samples)
        assert window.quantiles(1_001.0, QUANTILES) == [quantile(ordered, q) for q in QUANTILES]


@given(
    st.integers(min_value=64, max_value=200),  # the ring's capacity: numpy sorts every window here
    st.integers(min_value=0, max_value=500),  # pongs before the last ones: where the ring's head lands
    st.integers(min_value=1, max_value=199),  # the last pongs, the only ones still in the window
    st.lists(st.floats(min_value=0.0, max_value=30.0, width=32), min_size=1, max_size=50),
)
def test_numpy_sort_of_a_wrapped_ring_reads_only_the_live_samples(
    capacity: int, before: int, live: int, values: list[float]
) -> None:
    """The ring copied whole, its expired and unwritten slots made NaN before the sort: the same
    figures as the live samples sorted alone, wherever the live samples start and end."""
    with numpy_from(0):
        window = RollingWindow(span=10.0, capacity=capacity)
        for i in range(before):  # expired by the time of the read, and below every live sample
            window.add(-1.0 - values[i % len(values)], now=1_000.0 + i * 0.001)
        for i in range(live):
            window.add(values[i % len(values)], now=2_000.0)
        samples = window.samples(2_000.0)
        assert len(samples) == min(live, capacity)
        ordered = sorted(samples)
        assert window.quantiles(2_000.0, QUANTILES) == [quantile(ordered, q) for q in QUANTILES]


def test_numpy_sort_keeps_the_windows_own_nan_among_its_samples() -> None:
    """A NaN sample (never a real round trip) sorts last as numpy sorts it alone, not among the
    slots the copy made NaN: the maximum is NaN, the minimum and median are not."""
    window = RollingWindow(span=10.0, capacity=100)
    for _ in range(195):  # expired by the time of the read, below every live sample
        window.add(-1.0, now=1_000.0)
    for i in range(10):  # the live samples wrap round the ring: slots 95-99, then 0-5
        window.add(float(i % 7), now=2_000.0)
    window.add(math.nan, now=2_000.0)
    assert len(window.samples(2_000.0)) == 11
    assert window._head == 95
    with numpy_from(0):
        low, middle, high = window.quantiles(2_000.0, (0.0, 0.5, 1.0)) or []
    ordered = sorted(float(i % 7) for i in range(10))
    assert (low, middle) == (ordered[0], ordered[5])  # ranks 0 and 5 of 11: the NaN is rank 10
    assert math.isnan(high)
