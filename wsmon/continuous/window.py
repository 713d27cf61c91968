"""Rolling-window latency figures (p50/p90/p99/min/max over the last few minutes), in memory.

A window holds its samples in a ring of fixed capacity: float32 values (to ~0.1 µs below a
second: far finer than any network) and uint32 deciseconds of the monotonic clock. Memory
per target is therefore bounded whatever the uptime: 8 bytes a sample, ``capacity`` samples.
"""

from __future__ import annotations

import math
from array import array
from collections.abc import Sequence

__all__ = ["RollingWindow", "quantile"]

_TICKS_PER_SECOND = 10


def quantile(ordered: Sequence[float], q: float) -> float:
    """The q-quantile of sorted samples, interpolating linearly between the closest ranks.

    The same definition as numpy's default and ``statistics.quantiles(method="inclusive")``:
    q=0 is the minimum, q=1 the maximum. NaN for no samples.
    """
    if not ordered:
        return math.nan
    position = q * (len(ordered) - 1)
    low = math.floor(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


class RollingWindow:
    __slots__ = ("_count", "_head", "_span", "_times", "_values", "capacity")

    def __init__(self, span: float, capacity: int) -> None:
        self._span = int(span * _TICKS_PER_SECOND)
        self.capacity = capacity
        self._values = array("f")
        self._times = array("I")
        self._head = 0  # index of the oldest sample
        self._count = 0

    def add(self, value: float, now: float) -> None:
        """Add a sample taken at ``now`` (monotonic seconds); the oldest goes when full."""
        tick = int(now * _TICKS_PER_SECOND)
        self._expire(tick)
        if len(self._values) < self.capacity and self._count == len(self._values):
            # Grow while young: a probe every 30 s needs 10 slots, not the capacity.
            self._rotate_to_zero()  # (replaces the arrays: no references to the old ones here)
            self._values.append(value)
            self._times.append(tick)
            self._count += 1
            return
        values, times = self._values, self._times
        slot = (self._head + self._count) % len(values)
        values[slot] = value
        times[slot] = tick
        if self._count == len(values):
            self._head = (self._head + 1) % len(values)
        else:
            self._count += 1

    def _rotate_to_zero(self) -> None:
        if self._head:
            self._values = self._values[self._head :] + self._values[: self._head]
            self._times = self._times[self._head :] + self._times[: self._head]
            self._head = 0

    def _expire(self, tick: int) -> None:
        oldest = tick - self._span
        times = self._times
        size = len(times)
        while self._count and times[self._head] < oldest:
            self._head = (self._head + 1) % size
            self._count -= 1

    def samples(self, now: float) -> list[float]:
        """The samples of the last ``span`` seconds, oldest first.

        Reading changes nothing: the window is written by the event loop only.
        """
        oldest = int(now * _TICKS_PER_SECOND) - self._span
        values, times, head, count = self._values, self._times, self._head, self._count
        if not count:
            return []
        size = len(values)
        expired = 0  # times grow in ring order: the expired samples are the first few
        while expired < count and times[(head + expired) % size] < oldest:
            expired += 1
        start = (head + expired) % size
        end = start + count - expired
        if end <= size:
            return values[start:end].tolist()
        return values[start:].tolist() + values[: end - size].tolist()

    def quantiles(self, now: float, qs: Sequence[float]) -> list[float] | None:
        """The q-quantiles of the live samples; None when there are none."""
        ordered = sorted(self.samples(now))
        return [quantile(ordered, q) for q in qs] if ordered else None
