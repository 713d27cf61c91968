"""Probe deadlines: what ``asyncio.timeout`` does, on one timer shared by all probes of a loop."""

from __future__ import annotations

import asyncio
import itertools
import math
import weakref
from heapq import heapify, heappop, heappush
from typing import Any

__all__ = ["Deadline", "DeadlineQueue"]


class Deadline:
    """What ``asyncio.timeout`` does for a probe's task, on a timer shared with other probes.

    At ``when`` (loop time) the task is cancelled, and leaving the block turns that cancellation
    into TimeoutError; any other cancellation goes through. ``asyncio.timeout`` starts a timer
    per probe, which on uvloop is a libuv handle made, started, stopped and closed: ~7 µs of CPU
    per probe on the probe bench, against ~1 µs for an entry in the loop's ``DeadlineQueue``.
    The entry goes in when the deadline is made: make it in the ``with`` statement itself.
    """

    __slots__ = ("_cancelling", "_expired", "_queue", "task", "when")

    def __init__(self, loop: asyncio.AbstractEventLoop, when: float) -> None:
        task = asyncio.current_task(loop)
        assert task is not None, "a probe runs in a task"
        self.task: asyncio.Task[Any] | None = task  # None once the block is left
        self.when = when
        self._cancelling = task.cancelling()
        self._expired = False
        queue = _queues.get(loop)
        if queue is None:
            queue = _queues[loop] = DeadlineQueue()
        self._queue = queue
        queue.add(self, loop)

    def expire(self) -> None:
        assert self.task is not None
        self._expired = True
        self.task.cancel()

    def __enter__(self) -> None:
        return None

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: object) -> None:
        task, self.task = self.task, None
        assert task is not None
        self._queue.running -= 1
        if self._expired and exc_type is asyncio.CancelledError and task.uncancel() <= self._cancelling:
            raise TimeoutError from exc


class DeadlineQueue:
    """The deadlines of the probes on one event loop, in a heap served by one timer at a time.

    A timer is set for the earliest deadline, and another only when an earlier one comes in: with
    one timeout for all probes, a timer goes off about once per timeout, whatever the rate of
    probes. A probe that ends only marks its entry done (and lets go of its task); done entries
    leave the heap when they reach its top, or in a batch when they outnumber the running ones.
    The queue holds no reference to its loop, or to a task once no probe runs on it: the loop
    is a weak key of ``_queues``, and must stay free to go.
    """

    def __init__(self) -> None:
        self._heap: list[tuple[float, int, Deadline]] = []
        self._order = itertools.count()  # ties are broken by arrival, never by comparing entries
        self._timer_at = math.inf  # when the timer that serves the heap goes off
        self.running = 0

    def add(self, deadline: Deadline, loop: asyncio.AbstractEventLoop) -> None:
        heap = self._heap
        while heap and heap[0][2].task is None:
            heappop(heap)
        if len(heap) > _COMPACT_ABOVE and len(heap) > 2 * self.running:
            heap[:] = [item for item in heap if item[2].task is not None]
            heapify(heap)
        heappush(heap, (deadline.when, next(self._order), deadline))
        self.running += 1
        if deadline.when < self._timer_at:
            self._set_timer(loop, deadline.when)

    def _set_timer(self, loop: asyncio.AbstractEventLoop, when: float) -> None:
        self._timer_at = when
        loop.call_at(when, self._expire, when)

    def _expire(self, set_for: float) -> None:
        if set_for != self._timer_at:
            return  # an earlier deadline came in since: the timer set for it serves the heap
        loop = asyncio.get_running_loop()
        now = loop.time()
        heap = self._heap
        while heap and (heap[0][0] <= now or heap[0][2].task is None):
            deadline = heappop(heap)[2]
            if deadline.task is not None:
                deadline.expire()
        if heap:
            self._set_timer(loop, heap[0][0])
        else:
            self._timer_at = math.inf


_COMPACT_ABOVE = 1024  # entries in a heap from which done ones are swept out in a batch
_queues: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, DeadlineQueue] = weakref.WeakKeyDictionary()
