"""How wsmon's round trips are timed, on ``/metrics``: by the kernel's receive timestamps, or
(where the kernel gives none) by the event loop's clock, which counts a busy loop as latency;
and how many pings were not timed at all, their send time in doubt."""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client.core import CounterMetricFamily, Metric

from wsmon.ws import stamps
from wsmon.ws.connection import SEND_DOUBT

__all__ = ["ReceiveClockCollector"]


class ReceiveClockCollector:
    """Read at each scrape from ``wsmon.ws.stamps.tally`` (plain counters the transport keeps)."""

    def collect(self) -> Iterator[Metric]:
        tally = stamps.tally
        sockets = CounterMetricFamily(
            "wsmon_receive_clock_sockets",
            "WebSocket connections opened, by what times their arrivals: kernel receive timestamps "
            "(kernel) or the event loop when it reads (loop: a busy wsmon inflates round trips)",
            labels=["clock"],
        )
        sockets.add_metric(["kernel"], tally.kernel_sockets)
        sockets.add_metric(["loop"], tally.loop_sockets)
        yield sockets
        yield CounterMetricFamily(
            "wsmon_receive_clock_loop_reads",
            "Reads of kernel-stamped connections that came without a usable stamp (timed by the loop)",
            value=tally.loop_reads,
        )
        yield CounterMetricFamily(
            "wsmon_untimed_pings",
            f"Pings whose send took longer than {SEND_DOUBT * 1e3:g} ms (wsmon preempted while sending): "
            "their pongs count, their round trips are left out (a probe sends such a ping again)",
            value=tally.untimed_pings,
        )
