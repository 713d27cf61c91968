"""CPU per round trip: the kernel-stamped transport (``wsmon.ws.stamped``) against uvloop's own.

In one process on uvloop, C WebSocket connections to an echo server in another process each
chain ping → pong → ping… until N round trips are done in all; the process's CPU time (user +
sys, ``getrusage``) over those N round trips, divided by N, is the client's whole cost of one
write and one read, event loop included. The server's CPU is not counted. Each transport runs
REPS times per case, taking turns (the order flips each repetition); medians, with min–max.

Then the same for whole connections (``--opens``): C workers open (connect, TLS, upgrade) and
close (close handshake) N connections in all, as a probe does without its ping.

- ws://: ``goecho`` (Go + gorilla/websocket), built into bench/bin/ as ``probe_cpu.py`` does.
- wss://: a Python TLS echo server (``tests/servers.py``' conforming one, private CA) in a
  child process: slower than goecho, which lengthens wall time, not the client's CPU.

    .venv/bin/python bench/stamped_cpu.py                      # ws and wss, C=1 and C=50
    .venv/bin/python bench/stamped_cpu.py --scheme ws --case 1:20000 --opens 50:3000 --reps 5

Results go to stdout and ``bench/results/stamped_cpu-<time>.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import resource
import socket
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from time import perf_counter
from urllib.parse import urlsplit

import uvloop

BENCH = Path(__file__).resolve().parent
sys.path[:0] = [str(BENCH.parent)]  # this checkout's wsmon and tests, whatever the venv installed

from probe_cpu import RESULTS, ensure_goref, goecho  # noqa: E402 - after the path is set

from wsmon.ws.connection import ClientConnection  # noqa: E402
from wsmon.ws.handshake import build_request, new_key  # noqa: E402
from wsmon.ws.stamped import StampedTransport  # noqa: E402

# "unstamped" is the stamped transport with kernel_stamps=False: what the stamps themselves cost.
TRANSPORTS = ("uvloop", "stamped", "unstamped")
PAYLOAD = b"ping"


class Chain(ClientConnection):
    """Sends the next ping from the pong's callback: no task or future per round trip."""

    __slots__ = ("done", "gone", "left")
    done: asyncio.Future[None]
    gone: asyncio.Future[None]
    left: int

    def pong_received(self, payload: bytes, now: float) -> None:
        self.left -= 1
        if self.left > 0:
            self.send_ping(PAYLOAD)
        elif not self.done.done():
            self.done.set_result(None)

    def lost(self, exc: Exception | None) -> None:
        if not self.gone.done():
            self.gone.set_result(None)


async def open_chain(kind: str, host: str, port: int, context: ssl.SSLContext | None) -> Chain:
    loop = asyncio.get_running_loop()
    key = new_key()
    conn = Chain(build_request(f"{host}:{port}", "/", key, ()), key, loop)
    conn.left, conn.done, conn.gone = 0, loop.create_future(), loop.create_future()
    if kind == "uvloop":
        await loop.create_connection(lambda: conn, host, port, ssl=context, server_hostname=host if context else None)
    else:
        transport = await StampedTransport.connect([(socket.AF_INET, (host, port))], kernel_stamps=kind == "stamped")
        if context is not None:
            await transport.start_tls(context, host)
        transport.start(conn)
    assert conn.opened is not None
    await conn.opened
    return conn


async def round_trips(conns: list[Chain], n: int) -> None:
    loop = asyncio.get_running_loop()
    for conn in conns:
        conn.left, conn.done = n // len(conns), loop.create_future()
        conn.send_ping(PAYLOAD)
    await asyncio.gather(*(conn.done for conn in conns))


async def opens(kind: str, host: str, port: int, context: ssl.SSLContext | None, c: int, n: int) -> None:
    left = n

    async def worker() -> None:
        nonlocal left
        while left > 0:
            left -= 1
            conn = await open_chain(kind, host, port, context)
            conn.send_close()
            await conn.gone

    await asyncio.gather(*(worker() for _ in range(c)))


@dataclass
class Run:
    what: str  # "round trip" or "connection"
    scheme: str
    transport: str
    connections: int
    n: int
    cpu_s: float
    user_s: float
    sys_s: float
    wall_s: float
    kernel_stamps: bool

    @property
    def us_per_item(self) -> float:
        return self.cpu_s / self.n * 1e6


async def measure_opens(kind: str, url: str, c: int, n: int, context: ssl.SSLContext | None) -> Run:
    parts = urlsplit(url)
    assert parts.hostname and parts.port
    await opens(kind, parts.hostname, parts.port, context, c, 2 * c)  # warm
    before, began = resource.getrusage(resource.RUSAGE_SELF), perf_counter()
    await opens(kind, parts.hostname, parts.port, context, c, n)
    after, wall = resource.getrusage(resource.RUSAGE_SELF), perf_counter() - began
    user, system = after.ru_utime - before.ru_utime, after.ru_stime - before.ru_stime
    return Run(
        "connection", "wss" if context else "ws", kind, c, n, user + system, user, system, wall, kind == "stamped"
    )


async def measure(kind: str, url: str, c: int, n: int, context: ssl.SSLContext | None) -> Run:
    parts = urlsplit(url)
    assert parts.hostname and parts.port
    conns = [await open_chain(kind, parts.hostname, parts.port, context) for _ in range(c)]
    try:
        await round_trips(conns, 200 * c)  # warm: first-use costs on both sides are not kept
        before, began = resource.getrusage(resource.RUSAGE_SELF), perf_counter()
        await round_trips(conns, n)
        after, wall = resource.getrusage(resource.RUSAGE_SELF), perf_counter() - began
    finally:
        for conn in conns:
            conn.abort()
        await asyncio.sleep(0.05)
    user, system = after.ru_utime - before.ru_utime, after.ru_stime - before.ru_stime
    scheme = "wss" if context else "ws"
    stamped = all(conn.kernel_stamps for conn in conns)
    return Run("round trip", scheme, kind, c, n // c * c, user + system, user, system, wall, stamped)


@contextlib.contextmanager
def tls_echo() -> Iterator[tuple[str, ssl.SSLContext]]:
    """The tests' conforming wss:// server in a child process; its URL and a client context."""
    with tempfile.TemporaryDirectory() as directory:
        port_file = Path(directory) / "port"
        proc = subprocess.Popen([sys.executable, __file__, "--serve-tls", directory], stdout=subprocess.DEVNULL)
        try:
            deadline = time.monotonic() + 20
            while not port_file.exists() or not port_file.read_text().endswith("\n"):
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("the TLS echo server did not start")
                time.sleep(0.05)
            port = int(port_file.read_text())
            context = ssl.create_default_context(cafile=str(Path(directory) / "ca.pem"))
            yield f"wss://127.0.0.1:{port}/", context
        finally:
            proc.terminate()
            proc.wait()


def serve_tls(directory: str) -> None:
    from tests import servers

    async def serve() -> None:
        certificates = servers.make_certificates(Path(directory))
        async with servers.tls_server(certificates) as server:
            (Path(directory) / "port").write_text(f"{server.port}\n")
            await asyncio.Event().wait()

    uvloop.run(serve())


def compare(schemes: list[str], cases: list[tuple[str, int, int]], reps: int) -> list[Run]:
    """Every transport REPS times per (what, C, N) case and scheme, taking turns."""
    runs: list[Run] = []
    with contextlib.ExitStack() as stack:
        servers: dict[str, tuple[str, ssl.SSLContext | None]] = {}
        if "ws" in schemes:
            ensure_goref()
            servers["ws"] = (stack.enter_context(goecho()), None)
        if "wss" in schemes:
            servers["wss"] = stack.enter_context(tls_echo())
        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            for scheme in schemes:
                url, context = servers[scheme]
                for what, c, n in cases:
                    how = measure if what == "round trip" else measure_opens
                    for rep in range(reps):
                        for kind in TRANSPORTS if rep % 2 == 0 else TRANSPORTS[::-1]:
                            run = runner.run(how(kind, url, c, n, context))
                            runs.append(run)
                            print(
                                f"  {scheme} c={c} n={n} {kind:9} rep {rep + 1}: "
                                f"{run.us_per_item:6.1f} µs/{what}, {run.n / run.wall_s:.0f}/s",
                                file=sys.stderr,
                            )
    return runs


def summarize(runs: list[Run]) -> list[dict[str, object]]:
    """One row per case and transport: medians."""
    rows: list[dict[str, object]] = []
    for what, scheme, c, n in dict.fromkeys((r.what, r.scheme, r.connections, r.n) for r in runs):
        for kind in TRANSPORTS:
            mine = [
                r for r in runs if (r.what, r.scheme, r.connections, r.n, r.transport) == (what, scheme, c, n, kind)
            ]
            per = [r.us_per_item for r in mine]
            rows.append(
                {
                    "what": what,
                    "scheme": scheme,
                    "connections": c,
                    "n": n,
                    "transport": kind,
                    "cpu_us": statistics.median(per),
                    "min": min(per),
                    "max": max(per),
                    "user_us": statistics.median(r.user_s / r.n * 1e6 for r in mine),
                    "sys_us": statistics.median(r.sys_s / r.n * 1e6 for r in mine),
                    "per_s": statistics.median(r.n / r.wall_s for r in mine),
                    "kernel_stamps": all(r.kernel_stamps for r in mine),
                }
            )
    return rows


def print_table(rows: list[dict[str, object]]) -> None:
    head = f"{'CPU per':10} {'scheme':6} {'C':>3} {'N':>6}  {'transport':9} {'µs (min–max)':>22} {'user':>6} {'sys':>6}"
    print(head + f" {'per s':>7}  stamps")
    print("-" * (len(head) + 16))
    for r in rows:
        spread = f"{r['cpu_us']:.1f} ({r['min']:.1f}–{r['max']:.1f})"
        print(
            f"{r['what']:10} {r['scheme']:6} {r['connections']:>3} {r['n']:>6}  {r['transport']:9} {spread:>22} "
            f"{r['user_us']:>6.1f} {r['sys_us']:>6.1f} {r['per_s']:>7.0f}  {r['kernel_stamps']}"
        )
    by_case: dict[tuple[object, ...], dict[object, float]] = {}
    for r in rows:
        figures = by_case.setdefault((r["what"], r["scheme"], r["connections"], r["n"]), {})
        figures[r["transport"]] = r["cpu_us"]  # type: ignore[assignment]
    for (what, scheme, c, _), figures in by_case.items():
        for kind in TRANSPORTS[1:]:
            extra, ratio = figures[kind] - figures["uvloop"], figures[kind] / figures["uvloop"]
            print(f"{what}, {scheme} C={c}: {kind} − uvloop = {extra:+.1f} µs ({ratio:.2f}×)")


def parse_case(text: str) -> tuple[int, int]:
    c, _, n = text.partition(":")
    return int(c), int(n)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scheme", action="append", choices=["ws", "wss"], help="default: both")
    parser.add_argument("--case", action="append", type=parse_case, help="round trips, C:N (default 1:20000, 50:50000)")
    parser.add_argument("--opens", action="append", type=parse_case, help="connections, C:N (default 50:3000)")
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--serve-tls", metavar="DIR", help=argparse.SUPPRESS)  # the wss:// child
    args = parser.parse_args()
    if args.serve_tls:
        serve_tls(args.serve_tls)
        return 0
    cases = [("round trip", c, n) for c, n in args.case or [(1, 20000), (50, 50000)]]
    cases += [("connection", c, n) for c, n in args.opens or [(50, 3000)]]
    runs = compare(args.scheme or ["ws", "wss"], cases, args.reps)
    rows = summarize(runs)
    print_table(rows)
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / f"stamped_cpu-{time.strftime('%Y%m%d-%H%M%S')}.json"
    out.write_text(json.dumps({"rows": rows, "runs": [asdict(r) for r in runs], "python": sys.version}, indent=1))
    print(f"every run: {out.relative_to(BENCH.parent)}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
