"""wsmon's counterpart of goprobe: N probes at concurrency C through ``wsmon.probe.probe()``.

Each probe is what goprobe does: connect, upgrade, one ping/pong, close, with the built-in
``ping`` module, on uvloop (``--loop asyncio`` for the standard loop). It prints one line in
goprobe's format, so that ``bench/probe_cpu.py`` reads both the same way::

    <rate> probes/s; errors <n>; connect p50 <ms>ms p99 <ms>ms; ping p50 <ms>ms

"connect" is resolve + TCP connect + upgrade (what goprobe's ``Dial`` covers), "ping" the
round trip of the one ping. Failures are counted, and the most common reasons go to stderr.

C worker tasks take probes from a shared count, so the driver adds one coroutine frame per
probe and nothing else: the CPU this process uses is wsmon's (plus interpreter start-up,
which ``probe_cpu.py`` measures separately).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections import Counter
from time import perf_counter

import uvloop

from wsmon.probe.module import BUILTIN_MODULES
from wsmon.probe.prober import probe


async def run(url: str, n: int, concurrency: int, timeout: float) -> int:
    module = BUILTIN_MODULES["ping"]
    connect: list[float] = []
    ping: list[float] = []
    errors: Counter[str] = Counter()
    left = n

    async def worker() -> None:
        nonlocal left
        while left > 0:
            left -= 1
            result = await probe(url, module, timeout)
            if not result.success or result.ping is None:
                errors[f"{result.reason}: {result.error}"] += 1
                continue
            phases = result.phases
            connect.append(phases["resolve"] + phases["connect"] + phases["upgrade"])
            ping.append(result.ping.rtts[0])

    start = perf_counter()
    await asyncio.gather(*(worker() for _ in range(min(concurrency, n))))
    elapsed = perf_counter() - start
    connect.sort()
    ping.sort()
    failed = sum(errors.values())
    if not connect:
        print(f"0 probes/s; errors {failed}; no probe succeeded")
    else:
        print(
            f"{n / elapsed:.0f} probes/s; errors {failed}; "
            f"connect p50 {connect[len(connect) // 2] * 1e3:.2f}ms "
            f"p99 {connect[len(connect) * 99 // 100] * 1e3:.2f}ms; "
            f"ping p50 {ping[len(ping) // 2] * 1e3:.3f}ms"
        )
    for error, count in errors.most_common(3):
        print(f"{count}× {error}", file=sys.stderr)
    return 1 if failed == n else 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-url", "--url", default="ws://127.0.0.1:18765/", help="target")
    parser.add_argument("-n", type=int, default=2000, help="probes")
    parser.add_argument("-c", type=int, default=50, help="concurrency")
    parser.add_argument("--timeout", type=float, default=10.0, help="per probe, seconds (as goprobe)")
    parser.add_argument("--loop", choices=("uvloop", "asyncio"), default="uvloop", help="event loop")
    args = parser.parse_args()
    main = run(args.url, args.n, args.c, args.timeout)
    return uvloop.run(main) if args.loop == "uvloop" else asyncio.run(main)


if __name__ == "__main__":
    sys.exit(main())
