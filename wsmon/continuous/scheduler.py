"""Probe mode: a fresh-connection probe per target per interval.

One timer per target (``call_at``), not a task: start times are spread over the interval by
a stable hash of the name (no thundering herd after a restart), each probe runs in a task of
its own (a slow or hanging target holds nobody else up: its timeout is shorter than its
interval), and a semaphore bounds how many run at once. How late each probe starts is
measured: that is the scheduler's lag.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Callable
from time import perf_counter

from wsmon.config.file import Settings, Target
from wsmon.continuous.store import TargetState
from wsmon.probe.prober import probe

__all__ = ["ProbeScheduler", "start_offset"]


def start_offset(name: str, interval: float) -> float:
    """Where in its interval a target's probes fall: stable across restarts and replicas."""
    digest = int.from_bytes(hashlib.blake2b(name.encode(), digest_size=4).digest(), "big")
    return interval * digest / 2**32


class _Entry:
    __slots__ = ("due", "handle", "running", "state", "target")

    def __init__(self, target: Target, state: TargetState, due: float) -> None:
        self.target, self.state, self.due = target, state, due
        self.handle: asyncio.TimerHandle | None = None
        self.running: asyncio.Task[None] | None = None


class ProbeScheduler:
    def __init__(
        self,
        max_in_flight: int,
        on_lag: Callable[[float], None],
        on_in_flight: Callable[[int], None],
    ) -> None:
        self._loop = asyncio.get_running_loop()
        self._slots = asyncio.Semaphore(max_in_flight)
        self._on_lag, self._on_in_flight = on_lag, on_in_flight
        self._entries: dict[str, _Entry] = {}

    def apply_settings(self, settings: Settings) -> None:
        """Nothing to change: ``max_in_flight`` holds from start-up, intervals are per target."""

    def sample_interval(self, target: Target) -> float:
        return target.interval

    def start(self, target: Target, state: TargetState) -> None:
        now = self._loop.time()
        entry = _Entry(target, state, now + start_offset(target.name, target.interval))
        self._entries[target.name] = entry
        entry.handle = self._loop.call_at(entry.due, self._fire, entry)

    def halt(self, name: str, code: int = 1000) -> None:
        """Stop probing ``name`` (a probe running now finishes; ``code`` is for connections)."""
        entry = self._entries.pop(name, None)
        if entry is not None and entry.handle is not None:
            entry.handle.cancel()

    def reconnect(self, name: str) -> bool:
        return False  # every probe opens a fresh connection: nothing to reconnect

    async def stop(self) -> None:
        running = [e.running for e in self._entries.values() if e.running is not None]
        for name in list(self._entries):
            self.halt(name)
        for task in running:
            task.cancel()
        await asyncio.gather(*running, return_exceptions=True)

    def _fire(self, entry: _Entry) -> None:
        interval = entry.target.interval
        due = entry.due
        # Fixed rate: the next probe is one interval after this one was due; if the loop
        # fell behind by more than that, skip ahead instead of firing a burst.
        entry.due = max(due + interval, self._loop.time())
        entry.handle = self._loop.call_at(entry.due, self._fire, entry)
        if entry.running is None:  # its timeout is shorter than its interval: never both
            entry.running = self._loop.create_task(self._probe(entry, due))

    async def _probe(self, entry: _Entry, due: float) -> None:
        try:
            async with self._slots:
                self._on_lag(self._loop.time() - due)
                self._on_in_flight(+1)
                try:
                    result = await probe(entry.target.url, entry.target.module, entry.target.timeout)
                finally:
                    self._on_in_flight(-1)
            entry.state.record_probe(result, perf_counter())
        finally:
            entry.running = None
