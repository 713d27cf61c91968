"""The phase clock: which phase a probe (or a persistent connection's opening) is in, and how
long each finished phase took.

The probe makes one and hands it to its ``Opening``, so whichever part of the code moves the
probe on, there is one phase in progress: a deadline or an error that hits is classified by it.
A persistent connection makes one per opening.
"""

from __future__ import annotations

from time import perf_counter
from typing import TYPE_CHECKING, Any

from wsmon.probe.reasons import Phase

if TYPE_CHECKING:  # for its type only: it imports structlog, which probes need not load
    from wsmon.probe.log import ProbeLog

__all__ = ["PhaseClock"]


class PhaseClock:
    """The phase in progress (``phase``) and the seconds each finished one took (``phases``)."""

    __slots__ = ("log", "phase", "phases")

    def __init__(self, log: ProbeLog | None = None) -> None:
        self.phase = Phase.RESOLVE  # every opening starts by looking the host up
        self.phases: dict[str, float] = {}  # by Phase, in the order they ended
        self.log = log  # told "<phase> done" as each phase ends, when someone listens

    def enter(self, phase: Phase) -> None:
        """``phase`` is now in progress: a failure from here on is classified by it."""
        self.phase = phase

    def timed(self, phase: Phase, began: float, **details: Any) -> float:
        """Record ``phase`` as lasting from ``began`` until now (perf_counter); returns now."""
        now = perf_counter()
        self.phases[phase] = now - began
        if self.log is not None:
            self.log(f"{phase} done", seconds=round(now - began, 6), **details)
        return now
