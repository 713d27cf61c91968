"""A cumulative latency histogram per target, as compact as its counts.

prometheus_client's Histogram keeps a lock and a float object per bucket per label set;
thousands of targets pinged every second want a plain array and one bisect per sample.
"""

from __future__ import annotations

from array import array
from bisect import bisect_left
from collections.abc import Iterator

__all__ = ["BUCKET_LABELS", "LATENCY_BUCKETS", "LatencyHistogram"]

# Upper bounds in seconds: loopback and LAN (sub-ms) up to a struggling remote node (10 s).
LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
BUCKET_LABELS = (*(repr(bound) for bound in LATENCY_BUCKETS), "+Inf")  # the `le` values, +Inf last


class LatencyHistogram:
    __slots__ = ("_counts", "sum")

    def __init__(self) -> None:
        self._counts = array("Q", bytes(8 * (len(LATENCY_BUCKETS) + 1)))  # the last one is +Inf
        self.sum = 0.0

    def observe(self, value: float) -> None:
        # bisect_left: a value equal to a bound belongs to that bucket (le = "less or equal").
        self._counts[bisect_left(LATENCY_BUCKETS, value)] += 1
        self.sum += value

    @property
    def counts(self) -> array[int]:
        """Each bucket's own count (not cumulative), +Inf last: the live array, to read only."""
        return self._counts

    @property
    def count(self) -> int:
        return sum(self._counts)

    def cumulative(self) -> Iterator[tuple[str, int]]:
        """(le, cumulative count) pairs, +Inf last, as the exposition formats want them."""
        total = 0
        for le, count in zip(BUCKET_LABELS, self._counts, strict=True):
            total += count
            yield le, total
