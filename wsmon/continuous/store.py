"""What wsmon knows about each target: latest result, counters, histograms, rolling windows.

The scheduler and persistent connections write here; collectors, the pusher and the dashboard
only read. Memory per target is bounded: fixed-size histograms, a ring-buffer window, a small
dict of failure counts by reason (the reasons are a closed set).
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterator
from dataclasses import dataclass
from enum import StrEnum

from wsmon.config.file import Target
from wsmon.continuous.window import RollingWindow
from wsmon.metrics.histogram import LatencyHistogram, buckets
from wsmon.probe.reasons import Reason
from wsmon.probe.result import ProbeResult

__all__ = ["ConnectionState", "LastError", "Store", "TargetState"]

# The window keeps at most this many samples more than one per ping/probe interval needs,
# so a burst (reconnect storms, a shorter interval after reload) cannot grow it unbounded.
_WINDOW_SLACK = 1.25
_WINDOW_MAX = 4096
# What every target without extracted values shares (most have none): never written to.
_NO_VALUES: dict[str, tuple[float, float]] = {}


class ConnectionState(StrEnum):
    """A persistent target's connection as it is exported (``wsmon_connection_state{state}``)."""

    CONNECTING = "connecting"
    CONNECTED = "connected"
    DISCONNECTED = "disconnected"


@dataclass(frozen=True, slots=True)
class LastError:
    reason: Reason
    message: str  # already free of secrets
    at: float  # unix time


class TargetState:
    """Everything recorded for one target; written by one owner, read by many."""

    __slots__ = (
        "connect_histogram",
        "connected_since",
        "failures",
        "labels",
        "last_connect",
        "last_error",
        "last_message_at",
        "last_ping_ok",
        "last_rtt",
        "latest",
        "messages",
        "paused",
        "ping_histogram",
        "pings_ok",
        "reconnects",
        "state",
        "target",
        "values",
        "window",
    )

    def __init__(self, target: Target, window: float, sample_interval: float) -> None:
        self.target = target
        self.labels = (("target", target.name), *target.labels)  # on every series of this target
        self.latest: ProbeResult | None = None  # probe mode
        self.paused = False  # from the dashboard: not probed, not reconnected
        self.pings_ok = 0  # successful probes or pings
        self.failures: dict[Reason, int] = {}
        bounds = buckets(target.series.buckets)
        self.connect_histogram = LatencyHistogram(bounds)
        self.ping_histogram = LatencyHistogram(bounds)
        capacity = min(_WINDOW_MAX, math.ceil(window / sample_interval * _WINDOW_SLACK) + 1)
        self.window = RollingWindow(window, capacity)
        self.last_error: LastError | None = None
        # persistent mode
        self.state = ConnectionState.DISCONNECTED
        self.reconnects = 0
        self.connected_since: float | None = None
        self.last_connect: float | None = None  # seconds to establish the current connection
        self.last_rtt: float | None = None
        self.last_ping_ok = False
        self.messages = 0
        self.last_message_at: float | None = None
        # name → (value, unix time it last changed); a dict of its own once there is a value
        self.values: dict[str, tuple[float, float]] = _NO_VALUES

    # --- writers ----------------------------------------------------------------------------

    def record_probe(self, result: ProbeResult, now: float) -> None:
        """A probe-mode result (``now`` on the monotonic clock, for the window)."""
        self.latest = result
        if result.up:
            self.connect_histogram.observe(result.connect_duration)
        rtt = result.ping_rtt
        if rtt is not None:
            self.ping_histogram.observe(rtt)
            self.window.add(rtt, now)
        if result.success:
            self.pings_ok += 1
        else:
            assert result.reason is not None
            self.record_failure(result.reason, result.error)
        for step in result.steps:
            if step.value is not None and step.value_name is not None:
                self.record_value(step.value_name, step.value)

    def record_pong(self, rtt: float, now: float) -> None:
        """A persistent connection's ping came back after ``rtt`` seconds (hot path)."""
        self.last_rtt = rtt
        self.last_ping_ok = True
        self.pings_ok += 1
        self.ping_histogram.observe(rtt)
        self.window.add(rtt, now)

    def record_failure(self, reason: Reason, message: str) -> None:
        self.failures[reason] = self.failures.get(reason, 0) + 1
        self.last_error = LastError(reason, message, time.time())
        if reason is Reason.PING_TIMEOUT:
            self.last_ping_ok = False

    # A persistent target's connection state, written by its PersistentTarget's one state
    # transition (``_to``) and nowhere else.

    def record_connecting(self) -> None:
        self.state = ConnectionState.CONNECTING

    def record_connected(self, connect_seconds: float) -> None:
        if self.last_connect is not None:  # it was connected before: this is a reconnect
            self.reconnects += 1
        self.state = ConnectionState.CONNECTED
        self.connected_since = time.time()
        self.last_connect = connect_seconds
        self.connect_histogram.observe(connect_seconds)

    def record_disconnected(self) -> None:
        self.state = ConnectionState.DISCONNECTED
        self.connected_since = None
        self.last_ping_ok = False

    def record_message(self) -> None:
        self.messages += 1
        self.last_message_at = time.time()

    def record_value(self, name: str, value: float) -> None:
        previous = self.values.get(name)
        if previous is None or previous[0] != value:
            if self.values is _NO_VALUES:
                self.values = {}
            self.values[name] = (value, time.time())


class Store:
    """TargetStates by name; the monitor adds and removes them as the config changes."""

    def __init__(self) -> None:
        self._states: dict[str, TargetState] = {}

    def add(self, target: Target, window: float, sample_interval: float) -> TargetState:
        state = TargetState(target, window, sample_interval)
        self._states[target.name] = state
        return state

    def remove(self, name: str) -> None:
        self._states.pop(name, None)

    def get(self, name: str) -> TargetState | None:
        return self._states.get(name)

    def __iter__(self) -> Iterator[TargetState]:
        return iter(list(self._states.values()))

    def __len__(self) -> int:
        return len(self._states)
