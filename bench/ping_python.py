"""The Python of one persistent ping and its pong, the system calls left out.

N persistent targets, each a real ``PersistentTarget`` over a ``StampedTransport``, whose
socket is swapped for a stand-in once open: ``send`` takes the frame, ``recvmsg_into`` hands
back the pong to it, kernel stamp included. Each round, every target's ``tick()`` sends a ping
(the wheel's work per target) and every transport's ``_on_readable()`` reads its pong (what
the readers do per ready socket). ``perf_counter`` around each pass, divided by N; the
stand-in's own ``recvmsg_into`` is timed apart and taken off. Medians over the rounds.

What it is for: A/B of the hot path's Python in seconds, where ``persistent_load.py`` takes
minutes and its CPU figures swing by 10-20 % from window to window on a shared host. In that
benchmark each µs here weighed about 2-3 µs a ping (caches and branch predictors are cold
between one socket's turn and the next, in a process that shares its core with the servers).

    PYTHONPATH=$PWD .venv/bin/python bench/ping_python.py
    PYTHONPATH=/path/to/other/copy .venv/bin/python bench/ping_python.py --targets 2000 --rounds 40
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import socket
import statistics
import struct
import time
from time import perf_counter
from typing import Any

import uvloop

from wsmon.config.file import Target
from wsmon.continuous.persistent import PersistentTarget, State
from wsmon.continuous.store import TargetState
from wsmon.probe.module import BUILTIN_MODULES
from wsmon.ws.handshake import without_headers
from wsmon.ws.stamped import StampedTransport
from wsmon.ws.stamps import SO_TIMESTAMPNS

_TIMESPEC = struct.Struct("@ll")


class NoWheel:
    def add(self, member: Any) -> None:
        pass

    def remove(self, member: Any) -> None:
        pass


class EchoSocket:
    """Stands in for a connected socket whose server answers each ping at once."""

    def __init__(self) -> None:
        self.last = b""

    def send(self, data: bytes) -> int:
        self.last = data
        return len(data)

    def recvmsg_into(self, buffers: list[memoryview], ancillary_size: int) -> tuple[int, list[Any], int, None]:
        frame = self.last  # header, key, masked payload
        payload = bytes(byte ^ frame[2 + i % 4] for i, byte in enumerate(frame[6:]))
        pong = bytes((0x8A, len(payload))) + payload
        buffers[0][: len(pong)] = pong
        stamp = time.time_ns() - 100_000
        ancillary = [(socket.SOL_SOCKET, SO_TIMESTAMPNS, _TIMESPEC.pack(*divmod(stamp, 1_000_000_000)))]
        return len(pong), ancillary, 0, None

    def fileno(self) -> int:
        return -1


async def measure(targets: int, rounds: int) -> dict[str, float]:
    loop = asyncio.get_running_loop()
    server = socket.create_server(("127.0.0.1", 0))
    runners: list[PersistentTarget] = []
    transports: list[StampedTransport] = []
    for i in range(targets):
        target = Target(name=f"t{i}", url=f"ws://127.0.0.1:1/{i}", module=BUILTIN_MODULES["ping"], timeout=10.0)
        runner = PersistentTarget(
            target, TargetState(target, window=300.0, sample_interval=1.0), NoWheel(), 1, 10, asyncio.Semaphore()
        )
        client = socket.create_connection(server.getsockname())
        server.accept()[0].close()
        transport = StampedTransport(loop, client)
        conn = runner._factory(b"GET / HTTP/1.1\r\n\r\n", "key", loop)
        conn.response = without_headers(101, None)
        transport.start(conn)  # the request goes to the real socket, then the stand-in takes over
        transport._stop_reading()
        transport._sock = EchoSocket()  # type: ignore[assignment]
        client.close()
        conn.settle()
        runner.conn, runner.status = conn, State.CONNECTED
        runners.append(runner)
        transports.append(transport)
    server.close()
    gc.collect()
    gc.freeze()
    sends, reads = [], []
    for _ in range(rounds):
        started = perf_counter()
        for runner in runners:
            runner.tick()
        sent = perf_counter()
        for transport in transports:
            transport._on_readable()
        read = perf_counter()
        if any(runner._ping_sent_at is not None for runner in runners):
            raise RuntimeError("a pong was not taken as the answer to its ping")
        sends.append((sent - started) / targets * 1e6)
        reads.append((read - sent) / targets * 1e6)
    stand_in = EchoSocket()
    stand_in.last = transports[0]._sock.last  # type: ignore[attr-defined]
    buffers = [memoryview(bytearray(64))]
    started = perf_counter()
    for _ in range(targets):
        stand_in.recvmsg_into(buffers, 32)
    own = (perf_counter() - started) / targets * 1e6
    send, read = statistics.median(sends), statistics.median(reads) - own
    return {"send_us": send, "read_us": read, "ping_us": send + read, "stand_in_us": own}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--targets", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=40)
    args = parser.parse_args()
    figures = uvloop.run(measure(args.targets, args.rounds))
    print(
        f"Python per ping, {args.targets} targets, median of {args.rounds} rounds: "
        f"send {figures['send_us']:.2f} µs + pong {figures['read_us']:.2f} µs = {figures['ping_us']:.2f} µs "
        f"(the stand-in socket's {figures['stand_in_us']:.2f} µs a read taken off)"
    )


if __name__ == "__main__":
    main()
