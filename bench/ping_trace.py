"""Runs ``wsmon`` ready to write down every ping and pong of some persistent targets, one record
each, so that a benchmark can match each round trip wsmon measured to the same ping on the wire
and tell where an error came from. It starts writing when it gets SIGUSR2 and stops at the
next one (so that the windows measured for CPU before and after run wsmon as it is).

    python bench/ping_trace.py NAMES OUT -- serve --config … (wsmon's own arguments)

NAMES is a file of target names, one a line; OUT gets ``RECORD`` records (little-endian):

- a ping: kind 0, the target's index in NAMES, its sequence number, the clock before
  ``tick()``, the send time wsmon recorded, the clock after ``tick()`` (the send's duration
  bounds a preemption around the write), 1 if the frame was left buffered in the transport;
- a pong: kind 1, index, sequence number, the arrival wsmon used, the ``perf_counter`` read
  after the ``recvmsg`` that brought it, the stamp's age at that read (wall clock − stamp;
  NaN without one), the wall clock − that ``perf_counter`` (a preemption between the two reads
  shows as a jump), the ping's send time as wsmon held it, 1 if wsmon timed that ping (0: its
  send took too long to tell when it left, ``SEND_DOUBT``), and how many round trips the target
  had recorded after it (its ``wsmon_ping_pong_window_seconds_count``).

Only what the benchmark names is traced; the others pay one dict lookup a ping and pong. The
records go through a 64 KB buffer; the rest is written out when wsmon exits (SIGTERM stops it
cleanly). What the trace holds in wsmon's memory goes to OUT.footprint when it starts.
"""

from __future__ import annotations

import atexit
import math
import signal
import struct
import sys
from collections.abc import Callable
from pathlib import Path
from time import perf_counter
from typing import Any

RECORD = struct.Struct("<BII7d")
PING, PONG = 0, 1
BUFFER = 64 * 1024  # the records' write buffer: ~4 writes a second at 2,000 targets


def footprint_file(out: Path) -> Path:
    return out.with_name(out.name + ".footprint")


def footprint(out: Path) -> int | None:
    """Bytes the trace holds in wsmon's process (its index, buffer), once it has started."""
    path = footprint_file(out)
    return int(path.read_text()) if path.exists() else None


def install(names_file: Path, out: Path) -> Callable[[], None]:
    """Hooks wsmon, and writes next to OUT (``footprint()``) the bytes the trace itself holds,
    so that a benchmark can take them off wsmon's memory. Returns what unhooks it (what the trace
    holds stays held: the benchmark takes the same footprint off after it)."""
    from wsmon.continuous.persistent import PersistentTarget
    from wsmon.ws import stamped

    index = {name: i for i, name in enumerate(names_file.read_text().split())}
    sink = open(out, "wb", buffering=BUFFER)  # noqa: SIM115  # closed at exit
    atexit.register(sink.close)
    write, pack = sink.write, RECORD.pack
    last_read: list[Any] = [0.0, 0, None]  # the latest read's clocks, and the arrival from its stamp
    held = BUFFER + sys.getsizeof(index) + sum(map(sys.getsizeof, index)) + sys.getsizeof(last_read)
    footprint_file(out).write_text(f"{held}\n")
    arrival = stamped._arrival
    tick, pong = PersistentTarget.tick, PersistentTarget.pong

    def traced_arrival(ancdata: Any, now: float, wall_ns: int) -> float | None:
        when = arrival(ancdata, now, wall_ns)
        last_read[0], last_read[1], last_read[2] = now, wall_ns, when
        return when

    def traced_tick(self: PersistentTarget) -> None:
        i = index.get(self.target.name)
        if i is None:
            tick(self)
            return
        before = perf_counter()
        tick(self)
        after = perf_counter()
        sent_at = self._ping_sent_at  # negative for a ping wsmon leaves untimed
        if sent_at is not None and before <= abs(sent_at):  # a ping went out in this tick
            conn = self.conn
            buffered = float(bool(conn is not None and getattr(conn.transport, "_wbuf", None)))
            write(pack(PING, i, self._seq, before, abs(sent_at), after, buffered, 0.0, 0.0, 0.0))

    def traced_pong(self: PersistentTarget, payload: bytes, now: float) -> None:
        i = index.get(self.target.name)
        if i is not None and len(payload) == 4:
            read_now, wall_ns, stamped_at = last_read
            age = math.nan if stamped_at is None else read_now - stamped_at
            sent_at = self._ping_sent_at
            timed = sent_at is not None and sent_at > 0  # negative: untimed (older copies time all)
            pong(self, payload, now)
            write(
                pack(
                    PONG,
                    i,
                    int.from_bytes(payload, "big"),
                    now,
                    read_now,
                    age,
                    wall_ns * 1e-9 - read_now,
                    math.nan if sent_at is None else abs(sent_at),
                    float(timed),
                    self.state.ping_histogram.count,
                )
            )
            return
        pong(self, payload, now)

    def uninstall() -> None:
        stamped._arrival = arrival
        PersistentTarget.tick = tick  # type: ignore[method-assign]
        PersistentTarget.pong = pong  # type: ignore[method-assign]
        sink.flush()

    stamped._arrival = traced_arrival
    PersistentTarget.tick = traced_tick  # type: ignore[method-assign]
    PersistentTarget.pong = traced_pong  # type: ignore[method-assign]
    return uninstall


def read(path: Path) -> tuple[dict[int, dict[int, tuple[float, ...]]], dict[int, dict[int, tuple[float, ...]]]]:
    """(pings, pongs): target index → sequence number → the record's seven values."""
    pings: dict[int, dict[int, tuple[float, ...]]] = {}
    pongs: dict[int, dict[int, tuple[float, ...]]] = {}
    data = path.read_bytes() if path.exists() else b""
    for kind, i, seq, *values in RECORD.iter_unpack(data[: len(data) - len(data) % RECORD.size]):
        (pings if kind == PING else pongs).setdefault(i, {})[seq] = tuple(values)
    return pings, pongs


def main() -> None:
    if len(sys.argv) < 4 or sys.argv[3] != "--":
        sys.exit("usage: ping_trace.py NAMES OUT -- WSMON-ARGUMENTS…")
    names, out = Path(sys.argv[1]), Path(sys.argv[2])

    # Runs between two bytecodes of the main thread, the event loop's: a wheel tick under way
    # goes on with the methods it finds when it calls them.
    def start(signum: int, frame: object) -> None:
        uninstall = install(names, out)

        def stop(signum: int, frame: object) -> None:
            signal.signal(signal.SIGUSR2, signal.SIG_IGN)  # once
            uninstall()

        signal.signal(signal.SIGUSR2, stop)

    signal.signal(signal.SIGUSR2, start)
    sys.argv = ["wsmon", *sys.argv[4:]]
    from wsmon.cli import main as wsmon_main

    wsmon_main()


if __name__ == "__main__":
    main()
