"""What wsmon knows about each target: latest result, counters, histograms, rolling windows.

The scheduler and persistent connections write here; collectors, the pusher and the dashboard
only read. Memory per target is bounded: fixed-size histograms, a ring-buffer window, a small
dict of failure counts by reason (the reasons are a closed set), the last few errors.

For fleets, each write keeps what a reader would otherwise recompute over every target: a
target's ``status`` (what the dashboard shows) and since when it is in that kind of state, a
``revision`` bumped by every write the dashboard shows; the Store's ``version`` (bumped by every
status change, addition and removal), its counts by status and a log of health changes. A
summary of 10,000 targets is then read off, not counted, and an unchanged page is recognised
without being built.
"""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from enum import StrEnum

from wsmon.config.file import Mode, Target
from wsmon.continuous.window import RollingWindow
from wsmon.metrics.histogram import LatencyHistogram, buckets
from wsmon.metrics.sinks import label_text
from wsmon.probe.reasons import Reason
from wsmon.probe.result import ProbeResult

__all__ = ["ConnectionState", "Health", "LastError", "Status", "Store", "TargetState"]

# The window keeps at most this many samples more than one per ping/probe interval needs,
# so a burst (reconnect storms, a shorter interval after reload) cannot grow it unbounded.
_WINDOW_SLACK = 1.25
_WINDOW_MAX = 4096
RECENT_ERRORS = 10  # errors kept per target, newest first: what went wrong, and how often lately
HEALTH_LOG = 16_384  # health changes the Store remembers for "changed since": a storm's worth
# What every target without extracted values shares (most have none): never written to.
_NO_VALUES: dict[str, tuple[float, float]] = {}
# What every target that never failed shares (64 bytes each otherwise): never written to.
_NO_FAILURES: dict[Reason, int] = {}


class ConnectionState(StrEnum):
    """A persistent target's connection as it is exported (``wsmon_connection_state{state}``)."""

    CONNECTING = "connecting"
    CONNECTED = "connected"
    DISCONNECTED = "disconnected"


class Status(StrEnum):
    """What the dashboard shows of a target: its connection state (persistent), the latest
    probe's outcome (probe mode), or paused."""

    CONNECTED = "connected"
    CONNECTING = "connecting"
    DISCONNECTED = "disconnected"
    UP = "up"
    DOWN = "down"
    PENDING = "pending"  # probe mode, not probed yet
    PAUSED = "paused"


class Health(StrEnum):
    """Statuses grouped by what they mean to whoever is on call."""

    BROKEN = "broken"  # down, disconnected, or connecting (again): not working
    PENDING = "pending"
    PAUSED = "paused"
    OK = "ok"


HEALTH = {
    Status.DOWN: Health.BROKEN,
    Status.DISCONNECTED: Health.BROKEN,
    Status.CONNECTING: Health.BROKEN,
    Status.PENDING: Health.PENDING,
    Status.PAUSED: Health.PAUSED,
    Status.CONNECTED: Health.OK,
    Status.UP: Health.OK,
}

# Who is told of a target's status change: (state, old status or None when new, new status).
StatusListener = Callable[["TargetState", "Status | None", "Status"], None]


@dataclass(frozen=True, slots=True)
class LastError:
    reason: Reason
    message: str  # already free of secrets
    at: float  # unix time


class TargetState:
    """Everything recorded for one target; written by one owner, read by many."""

    __slots__ = (
        "_errors",
        "_listener",
        "_paused",
        "braced",
        "connect_histogram",
        "connected_since",
        "failures",
        "health_since",
        "last_connect",
        "last_error",
        "last_message_at",
        "last_ping_ok",
        "last_rtt",
        "latest",
        "messages",
        "opened",
        "ping_histogram",
        "pings_ok",
        "reconnects",
        "revision",
        "state",
        "status",
        "target",
        "values",
        "window",
    )

    def __init__(
        self, target: Target, window: float, sample_interval: float, listener: StatusListener | None = None
    ) -> None:
        self.target = target
        # The labels every series of this target carries, as the text format writes them: in
        # braces, and opened for one more. Made once: a scrape making them anew for every target
        # left ~0.2 KB a target of memory the process did not give back (pymalloc arenas that
        # the scrape's 20,000 short-lived strings had filled, pinned by a few objects made then).
        text = label_text(self.labels)
        self.braced, self.opened = f"{{{text}}}", f"{{{text},"
        self.latest: ProbeResult | None = None  # probe mode
        self._paused = False  # from the dashboard: not probed, not reconnected
        self.pings_ok = 0  # successful probes or pings
        self.failures: dict[Reason, int] = _NO_FAILURES  # a dict of its own at the first failure
        bounds = buckets(target.series.buckets)
        self.connect_histogram = LatencyHistogram(bounds)
        self.ping_histogram = LatencyHistogram(bounds)
        capacity = min(_WINDOW_MAX, math.ceil(window / sample_interval * _WINDOW_SLACK) + 1)
        self.window = RollingWindow(window, capacity)
        self.last_error: LastError | None = None
        # The last RECENT_ERRORS, oldest first (made at the first). A list: a deque allocates a
        # block of 64 slots, ~630 bytes, which 10,000 targets failing once would each keep.
        self._errors: list[LastError] | None = None
        self.revision = 0  # bumped by every write the dashboard shows (not by subscription messages)
        # persistent mode
        self.state = ConnectionState.DISCONNECTED
        self.reconnects = 0
        self.connected_since: float | None = None
        self.last_connect: float | None = None  # seconds to establish the current connection
        self.last_rtt: float | None = None  # (probe mode too: the latest probe's)
        self.last_ping_ok = False
        self.messages = 0
        self.last_message_at: float | None = None
        # name → (value, unix time it last changed); a dict of its own once there is a value
        self.values: dict[str, tuple[float, float]] = _NO_VALUES
        self._listener = listener
        self.status = Status.DISCONNECTED if target.mode is Mode.PERSISTENT else Status.PENDING
        self.health_since = time.time()  # unix time it entered its current Health
        if listener is not None:
            listener(self, None, self.status)

    @property
    def labels(self) -> tuple[tuple[str, str], ...]:
        """The labels on every series of this target: its name, then its own."""
        return (("target", self.target.name), *self.target.labels)

    # --- what the dashboard reads -----------------------------------------------------------

    @property
    def paused(self) -> bool:
        return self._paused

    @paused.setter
    def paused(self, paused: bool) -> None:
        self._paused = paused
        self._restatus()

    @property
    def current_latency(self) -> float | None:
        """The latest round trip of a target that works now (connected, or up); else None."""
        return self.last_rtt if HEALTH[self.status] is Health.OK else None

    def recent_errors(self) -> list[LastError]:
        """The last few errors, newest first."""
        return [] if self._errors is None else list(reversed(self._errors))

    def detach(self) -> None:
        """Tell no one of status changes any more (removed from its Store; its runner may still
        write a last state before it hears)."""
        self._listener = None

    def _restatus(self) -> None:
        """Work out the status again after a write that may change it; tell the listener."""
        if self._paused:
            status = Status.PAUSED
        elif self.target.mode is Mode.PERSISTENT:
            status = _STATUS_OF[self.state]
        elif self.latest is None:
            status = Status.PENDING
        else:
            status = Status.UP if self.latest.success else Status.DOWN
        self.revision += 1
        old = self.status
        if status is old:
            return
        self.status = status
        if HEALTH[status] is not HEALTH[old]:
            self.health_since = time.time()
        if self._listener is not None:
            self._listener(self, old, status)

    # --- writers ----------------------------------------------------------------------------

    def record_probe(self, result: ProbeResult, now: float) -> None:
        """A probe-mode result (``now`` on the monotonic clock, for the window)."""
        self.latest = result
        if result.up:
            self.connect_histogram.observe(result.connect_duration)
        rtt = self.last_rtt = result.ping_rtt
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
        self._restatus()

    def record_pong(self, rtt: float, now: float) -> None:
        """A persistent connection's ping came back after ``rtt`` seconds (hot path)."""
        self.last_rtt = rtt
        self.last_ping_ok = True
        self.pings_ok += 1
        self.revision += 1
        self.ping_histogram.observe(rtt)
        self.window.add(rtt, now)

    def record_untimed_pong(self) -> None:
        """A pong to a ping whose send time is in doubt (``wsmon.ws.connection.SEND_DOUBT``):
        the connection answers, but its round trip is not known, so it goes into no figure."""
        self.last_ping_ok = True
        self.pings_ok += 1
        self.revision += 1

    def record_failure(self, reason: Reason, message: str) -> None:
        if self.failures is _NO_FAILURES:
            self.failures = {}
        self.failures[reason] = self.failures.get(reason, 0) + 1
        error = self.last_error = LastError(reason, message, time.time())
        if self._errors is None:
            self._errors = []
        self._errors.append(error)
        if len(self._errors) > RECENT_ERRORS:
            del self._errors[0]
        self.revision += 1
        if reason is Reason.PING_TIMEOUT:
            self.last_ping_ok = False

    # A persistent target's connection state, written by its PersistentTarget's one state
    # transition (``_to``) and nowhere else.

    def record_connecting(self) -> None:
        self.state = ConnectionState.CONNECTING
        self._restatus()

    def record_connected(self, connect_seconds: float) -> None:
        if self.last_connect is not None:  # it was connected before: this is a reconnect
            self.reconnects += 1
        self.state = ConnectionState.CONNECTED
        self.connected_since = time.time()
        self.last_connect = connect_seconds
        self.connect_histogram.observe(connect_seconds)
        self._restatus()

    def record_disconnected(self) -> None:
        self.state = ConnectionState.DISCONNECTED
        self.connected_since = None
        self.last_ping_ok = False
        self._restatus()

    def record_message(self) -> None:
        self.messages += 1
        self.last_message_at = time.time()

    def record_value(self, name: str, value: float) -> None:
        previous = self.values.get(name)
        if previous is None or previous[0] != value:
            if self.values is _NO_VALUES:
                self.values = {}
            self.values[name] = (value, time.time())


_STATUS_OF = {
    ConnectionState.CONNECTED: Status.CONNECTED,
    ConnectionState.CONNECTING: Status.CONNECTING,
    ConnectionState.DISCONNECTED: Status.DISCONNECTED,
}


class Store:
    """TargetStates by name; the monitor adds and removes them as the config changes.

    Besides the states, what the dashboard reads without walking them all: ``version``, bumped
    by every status change, addition and removal; ``members``, bumped by additions and removals;
    ``counts`` by status; ``changed_since(version)``; the states in name order.
    """

    def __init__(self) -> None:
        self._states: dict[str, TargetState] = {}
        self.version = 0
        self.members = 0
        self.counts: dict[Status, int] = dict.fromkeys(Status, 0)
        # Health changes: the Store's version after each, and the target's name. Two deques,
        # not one of pairs: a pair is 56 bytes more an entry, ~1 MB once the log is full.
        self._health_versions: deque[int] = deque(maxlen=HEALTH_LOG)
        self._health_names: deque[str] = deque(maxlen=HEALTH_LOG)
        self._by_name: tuple[int, list[TargetState]] = (-1, [])

    def add(self, target: Target, window: float, sample_interval: float) -> TargetState:
        self.remove(target.name)
        state = TargetState(target, window, sample_interval, self._status_changed)
        self._states[target.name] = state
        self.members += 1
        return state

    def remove(self, name: str) -> None:
        state = self._states.pop(name, None)
        if state is None:
            return
        state.detach()
        self.counts[state.status] -= 1
        self.members += 1
        self.version += 1
        self._log_health(name)

    def _status_changed(self, state: TargetState, old: Status | None, new: Status) -> None:
        if old is not None:
            self.counts[old] -= 1
        self.counts[new] += 1
        self.version += 1
        if old is None or HEALTH[old] is not HEALTH[new]:
            self._log_health(state.target.name)

    def _log_health(self, name: str) -> None:
        self._health_versions.append(self.version)
        self._health_names.append(name)

    def changed_since(self, version: int) -> int | None:
        """How many targets changed health (broken, ok, pending, paused), came or went after
        ``version``; None when that is further back than the Store remembers."""
        if version >= self.version:
            return 0
        names: set[str] = set()
        for at, name in zip(reversed(self._health_versions), reversed(self._health_names), strict=True):
            if at <= version:
                return len(names)
            names.add(name)
        if len(self._health_versions) == HEALTH_LOG or version < 0:
            return None
        return len(names)

    def by_name(self) -> list[TargetState]:
        """Every state in name order (made again only after an addition or removal)."""
        members, states = self._by_name
        if members != self.members:
            states = sorted(self._states.values(), key=_name)
            self._by_name = (self.members, states)
        return states

    def get(self, name: str) -> TargetState | None:
        return self._states.get(name)

    def __iter__(self) -> Iterator[TargetState]:
        return iter(list(self._states.values()))

    def __len__(self) -> int:
        return len(self._states)


def _name(state: TargetState) -> str:
    return state.target.name
