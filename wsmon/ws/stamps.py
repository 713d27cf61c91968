"""Kernel receive timestamps (``SO_TIMESTAMPNS``) turned into ``perf_counter`` time.

Why: a round trip measured when the event loop gets round to the socket includes however long
the loop was busy (a scrape, a garbage collection, a neighbour process). With ``SO_TIMESTAMPNS``
on, each ``recvmsg`` carries the time the kernel received the data, so a pong read 200 ms late
still says when it arrived.

The stamp is on the wall clock (CLOCK_REALTIME); round trips are measured on ``perf_counter``.
Rather than trusting an offset between the two clocks (which NTP slews and steps), the stamp is
turned into an age at read time (wall clock now minus the stamp) and that age is taken off
``perf_counter`` read at the same moment. A stamp that makes no sense (in the future after the
wall clock was stepped back, or older than ``MAX_AGE_NS``) is ignored: the read time is used instead.

One read has one stamp: that of the latest segment it took in (TCP merges segments queued
unread, keeping the newest stamp). A pong read together with data that came after it is
stamped when that data came: later than the truth, by at most how late the read was, never
earlier. With the loop keeping up, each segment is read on its own and carries its own stamp.

The kernel stamps packets only while some socket on the host asks for it, and it switches that on
lazily (a static key flipped from a work queue): measured here, a fresh connection's first reads
came unstamped half the time when no other socket had stamps on. So the first ``enable`` also
opens one UDP socket with stamps on, kept for the life of the process: the switch then stays on
between one probe's connection and the next. (Stamping every packet the host receives costs a
clock read each; with and without it, the probe benchmark's CPU per probe did not differ.)
"""

from __future__ import annotations

import atexit
import socket
import sys
from struct import Struct

__all__ = ["ANCILLARY_SIZE", "MAX_AGE_NS", "SO_TIMESTAMPNS", "Tally", "arrival", "enable", "tally"]

# Python's socket module does not name it. 35 is asm-generic's value (x86, ARM, RISC-V…); the
# few architectures that differ (SPARC, PA-RISC, Alpha) get no stamps, never a wrong option.
SO_TIMESTAMPNS: int | None = getattr(socket, "SO_TIMESTAMPNS", 35 if sys.platform == "linux" else None)

# struct timespec as the kernel sends it with SCM_TIMESTAMPNS (same value as SO_TIMESTAMPNS):
# time_t and long, both native longs on Linux. Precompiled: it is unpacked on every read.
_TIMESPEC = Struct("@ll")
_TIMESPEC_SIZE = _TIMESPEC.size
_SOL_SOCKET = socket.SOL_SOCKET
ANCILLARY_SIZE = socket.CMSG_SPACE(_TIMESPEC.size)
MAX_AGE_NS = 60 * 1_000_000_000


_keeper: socket.socket | None = None


class Tally:
    """What the process' reads (and pings) were timed by, for the exporter's own metrics to show."""

    __slots__ = ("kernel_sockets", "loop_reads", "loop_sockets", "untimed_pings")

    def __init__(self) -> None:
        self.kernel_sockets = 0  # sockets the kernel stamps
        self.loop_sockets = 0  # sockets it would not stamp: every read timed when read
        self.loop_reads = 0  # reads timed when read (no stamp, or none that made sense)
        self.untimed_pings = 0  # pings whose send took too long to tell when they left


tally = Tally()


def enable(sock: socket.socket) -> bool:
    """Ask the kernel to stamp what ``sock`` receives; False where it cannot."""
    if SO_TIMESTAMPNS is None or sock.family not in (socket.AF_INET, socket.AF_INET6, socket.AF_UNIX):
        tally.loop_sockets += 1
        return False
    try:
        sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
    except OSError:
        tally.loop_sockets += 1
        return False
    if _keeper is None:
        _keep_stamping_on()
    tally.kernel_sockets += 1
    return True


def _keep_stamping_on() -> None:
    """Hold one socket with stamps on, so the kernel keeps stamping (see the module's doc)."""
    global _keeper
    assert SO_TIMESTAMPNS is not None
    keeper = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)  # never bound: it takes no port
    try:
        keeper.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
    except OSError:
        keeper.close()
        return
    _keeper = keeper
    atexit.register(keeper.close)


def arrival(ancdata: list[tuple[int, int, bytes]], now: float, wall_ns: int) -> float | None:
    """When the data of one ``recvmsg`` arrived, on the ``perf_counter`` clock.

    ``ancdata`` is what ``recvmsg`` returned with ``ANCILLARY_SIZE`` of room: one message at
    most, the stamp, as nothing else was asked for. ``now`` and ``wall_ns`` are
    ``perf_counter()`` and ``time_ns()`` read together right after the read. None when the
    kernel gave no stamp or one that cannot be right.
    """
    if not ancdata:
        return None
    level, kind, data = ancdata[0]
    if kind != SO_TIMESTAMPNS or level != _SOL_SOCKET or len(data) < _TIMESPEC_SIZE:
        return None
    seconds: int
    nanoseconds: int
    seconds, nanoseconds = _TIMESPEC.unpack_from(data)
    age = wall_ns - (seconds * 1_000_000_000 + nanoseconds)
    if 0 <= age <= MAX_AGE_NS:
        return now - age * 1e-9
    return None
