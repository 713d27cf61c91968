"""Rolling-window latency figures (p50/p90/p99/min/max over the last few minutes), in memory.

A window holds its samples in a ring of fixed capacity: float32 values (to ~0.1 µs below a
second: far finer than any network) and deciseconds of the monotonic clock, counted from a
base the window moves forward now and then, in 16 bits (32 for windows longer than ~50
minutes). Memory per target is therefore bounded whatever the uptime: 6 bytes a sample
(8 for long windows), ``capacity`` samples.
"""

from __future__ import annotations

import math
from array import array
from bisect import bisect_left
from collections.abc import Sequence
from functools import lru_cache

import numpy
import numpy.typing as npt

__all__ = ["RollingWindow", "quantile"]

_TICKS_PER_SECOND = 10
NUMPY_FROM = 64  # samples in a window from which numpy sorts it (measured: the two cross at ~60)
_SHORT_SPAN = 30_000  # ticks (50 minutes): windows up to this long keep their times in 16 bits
_NAN = numpy.float32("nan")  # what a copy's dead slots become (a float32 is stored without a conversion)


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
    __slots__ = ("_base", "_count", "_head", "_limit", "_span", "_times", "_values", "capacity")

    def __init__(self, span: float, capacity: int) -> None:
        self._span = int(span * _TICKS_PER_SECOND)
        self.capacity = capacity
        self._values = array("f")
        short = self._span <= _SHORT_SPAN
        self._times = array("H" if short else "I")  # ticks since ``_base``
        self._limit = 0xFFFF if short else 0xFFFFFFFF  # the largest time the array holds
        self._base = 0  # the tick the times count from
        self._head = 0  # index of the oldest sample
        self._count = 0

    def add(self, value: float, now: float) -> None:
        """Add a sample taken at ``now`` (monotonic seconds); the oldest goes when full."""
        tick = int(now * _TICKS_PER_SECOND) - self._base
        values, times = self._values, self._times
        size, head, count = len(values), self._head, self._count
        # Samples older than the window go (in ring order, oldest first). Here, not in a method
        # of its own: once a second per persistent target, a call is a fifth of the cost.
        oldest = tick - self._span
        while count and times[head] < oldest:
            head = (head + 1) % size
            count -= 1
        self._head, self._count = head, count
        if not 0 <= tick <= self._limit:
            # Past what the array holds: count from later. Before the base (a sample older than
            # the window): as the oldest there can be.
            tick = self._rebase(tick) if tick > 0 else 0
            times = self._times
        if count == size:
            if size < self.capacity:
                # Grow while young: a probe every 30 s needs 10 slots, not the capacity.
                self._rotate_to_zero()  # (replaces the arrays: no references to the old ones here)
                self._values.append(value)
                self._times.append(tick)
                self._count += 1
                return
            self._head = (head + 1) % size  # full: the oldest is overwritten
        else:
            self._count = count + 1
        slot = (head + count) % size
        values[slot] = value
        times[slot] = tick

    def _rotate_to_zero(self) -> None:
        if self._head:
            self._values = self._values[self._head :] + self._values[: self._head]
            self._times = self._times[self._head :] + self._times[: self._head]
            self._head = 0

    def _rebase(self, tick: int) -> int:
        """Count from the oldest time a live sample can have (``tick`` less the span): every
        ~100 minutes for a 5-minute window. ``tick`` from the new base is returned."""
        shift = tick - self._span
        self._base += shift
        self._times = array(self._times.typecode, [max(t - shift, 0) for t in self._times])
        return tick - shift

    def _live(self, now: float) -> list[tuple[int, int]]:
        """Where the samples of the last ``span`` seconds are: one or two index ranges, oldest first.

        Times grow in ring order, so the expired samples are the first few: found by bisection
        (a scrape reads every window: stepping over the ~75 expired samples of a full 5-minute
        window one by one in Python took ~40 % of reading it).
        """
        oldest = int(now * _TICKS_PER_SECOND) - self._base - self._span
        times, head, count = self._times, self._head, self._count
        if not count:
            return []
        size = len(times)
        end = head + count
        if end <= size:
            return [(bisect_left(times, oldest, head, end), end)]
        end -= size  # the live samples wrap: [head, size) then [0, end)
        if times[size - 1] >= oldest:
            return [(bisect_left(times, oldest, head, size), size), (0, end)]
        return [(bisect_left(times, oldest, 0, end), end)]

    def samples(self, now: float) -> list[float]:
        """The samples of the last ``span`` seconds, oldest first.

        Reading changes nothing: the window is written by the event loop only.
        """
        return self._listed(self._live(now))

    def _listed(self, live: list[tuple[int, int]]) -> list[float]:
        """The samples in the ranges ``_live`` found, as a list."""
        values, out = self._values, []
        for start, end in live:
            out += values[start:end].tolist()
        return out

    def quantiles(self, now: float, qs: Sequence[float]) -> list[float] | None:
        """The q-quantiles of the live samples (as ``quantile`` computes them); None when there are none.

        A full window is sorted by numpy, in place of a list of Python floats: ~4 µs a window of
        300 samples against ~24 µs, which was most of a 10,000-target scrape (bench/README.md);
        below ``NUMPY_FROM`` samples the list is quicker than numpy's calls. The float32 values
        and the arithmetic on them are the same either way.
        """
        live = self._live(now)
        count = sum(end - start for start, end in live)
        if not count:
            return None
        picks, indices, ranks = _ranks(count, tuple(qs))
        if count < NUMPY_FROM:
            listed = self._listed(live)  # the ranges found above: no second search
            listed.sort()
            chosen = [listed[i] for i in picks]
        else:
            ordered = self._copied(live)
            ordered.sort()
            chosen = ordered[indices].tolist()
        return [chosen[low] + (chosen[high] - chosen[low]) * part for low, high, part in ranks]

    def _copied(self, live: list[tuple[int, int]]) -> npt.NDArray[numpy.float32]:
        """The samples in the ranges ``_live`` found as a numpy array of their own, to sort: the
        first ``count`` of it once sorted are the live samples sorted.

        Live samples that wrap round the ring are the whole ring copied with the slots between
        them (expired, or not written) made NaN, which numpy sorts last, after any NaN of the
        samples' own: one copy and one assignment instead of two slices joined (~1.5 µs a window
        less, most full windows wrap).
        """
        # float32 from the array's own buffer format ("f"): one call, where a view then a copy
        # of it took two (~0.2 µs a window more).
        ring: npt.NDArray[numpy.float32] = numpy.array(self._values)
        if len(live) == 1:
            ((start, end),) = live
            return ring[start:end]
        (start, _), (_, end) = live
        ring[end:start] = _NAN
        return ring


@lru_cache(maxsize=64)
def _ranks(
    count: int, qs: tuple[float, ...]
) -> tuple[tuple[int, ...], npt.NDArray[numpy.intp], tuple[tuple[int, int, float], ...]]:
    """For ``count`` sorted samples: the ranks ``quantile`` reads for each q (to pick at once; also
    as numpy indices), and for each q, where its two closest ranks are among those picked and the
    weight of the upper one. ``quantile``'s arithmetic, done once per window size instead of once
    per window.
    """
    positions = []
    for q in qs:
        position = q * (count - 1)
        low = math.floor(position)
        positions.append((low, min(low + 1, count - 1), position - low))
    picked = sorted({rank for low, high, _ in positions for rank in (low, high)})
    index = {rank: i for i, rank in enumerate(picked)}
    ranks = tuple((index[low], index[high], part) for low, high, part in positions)
    return tuple(picked), numpy.array(picked, dtype=numpy.intp), ranks
