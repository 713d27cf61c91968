"""What a probe found: immutable values, no Prometheus, no I/O."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field

from wsmon.probe.reasons import Reason

__all__ = ["PingStats", "ProbeResult", "StepResult"]


@dataclass(frozen=True, slots=True)
class PingStats:
    """Round trips of the pings of one probe; a lost ping has no entry in ``rtts``, nor has an
    untimed one (its pong came, but when it was sent is in doubt: wsmon was preempted)."""

    sent: int
    rtts: tuple[float, ...]
    untimed: int = 0

    @property
    def received(self) -> int:
        return len(self.rtts) + self.untimed

    @property
    def loss_ratio(self) -> float:
        return 0.0 if self.sent == 0 else (self.sent - self.received) / self.sent

    @property
    def min(self) -> float:
        return min(self.rtts, default=math.nan)

    @property
    def max(self) -> float:
        return max(self.rtts, default=math.nan)

    @property
    def avg(self) -> float:
        return sum(self.rtts) / len(self.rtts) if self.rtts else math.nan

    @property
    def jitter(self) -> float:
        """Mean deviation of the round trips, as ping(8) reports it ("mdev")."""
        if not self.rtts:
            return math.nan
        avg = self.avg
        return math.sqrt(sum((r - avg) ** 2 for r in self.rtts) / len(self.rtts))


@dataclass(frozen=True, slots=True)
class StepResult:
    """One message step: did the expected answer come, how long after the send, what it held."""

    index: int
    success: bool
    duration: float
    failed_due_to_regex: bool = False
    value_name: str | None = None
    value: float | None = None


@dataclass(frozen=True, slots=True)
class ProbeResult:
    """Outcome of one probe. ``error`` is a human message, already free of secrets."""

    success: bool
    duration: float
    timeout: float
    reason: Reason | None = None
    error: str = ""
    up: bool = False  # the WebSocket upgrade completed
    phases: Mapping[str, float] = field(default_factory=dict)  # seconds by Phase name
    status_code: int | None = None
    ip_protocol: int | None = None
    tls_version: str | None = None
    cert_expiry: float | None = None  # unix time the leaf certificate expires
    subprotocol: str | None = None
    ping: PingStats | None = None
    steps: tuple[StepResult, ...] = ()

    @property
    def ping_success(self) -> bool:
        return self.ping is not None and self.ping.sent > 0 and self.ping.loss_ratio == 0.0

    @property
    def ping_rtt(self) -> float | None:
        """The latest round trip (the one the seed ``ping_pong_duration`` metric reports)."""
        return self.ping.rtts[-1] if self.ping is not None and self.ping.rtts else None

    @property
    def connect_duration(self) -> float:
        """Connection establishment: TCP, TLS and upgrade together (name resolution apart)."""
        return sum(self.phases.get(p, 0.0) for p in ("connect", "tls", "upgrade"))
