"""CPU per probe inside one process: for A/B comparisons of wsmon copies on a busy machine.

N probes through ``wsmon.probe.probe()`` at concurrency C against a running echo server
(goecho), after 500 probes of warm-up, on uvloop; ``getrusage`` is read around them, so
interpreter start-up and imports are left out. Prints user and user + sys CPU µs per probe.
Pin it and the server to different cores and alternate the copies compared, e.g.::

    taskset -c 1 bench/bin/goecho -addr 127.0.0.1:18799 &
    for i in 1 2 3 4 5; do for w in /tmp/before /work/main; do
        PYTHONPATH=$w taskset -c 0 .venv/bin/python bench/inproc_cpu.py ws://127.0.0.1:18799/ 10000 50
    done; done

User time is the steadier figure when other processes share the machine: system time
includes waking the server, which costs more the idler the server is. See bench/README.md.
"""

from __future__ import annotations

import argparse
import asyncio
import resource
import sys

import uvloop

from wsmon.probe.module import BUILTIN_MODULES
from wsmon.probe.prober import probe

WARMUP = 500


async def run(url: str, n: int, concurrency: int) -> int:
    """N probes with C workers; returns how many failed."""
    module = BUILTIN_MODULES["ping"]
    left, failed = n, 0

    async def worker() -> None:
        nonlocal left, failed
        while left > 0:
            left -= 1
            result = await probe(url, module, 10.0)
            failed += not result.success

    await asyncio.gather(*(worker() for _ in range(min(concurrency, n))))
    return failed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("url", help="an echo server, e.g. ws://127.0.0.1:18799/")
    parser.add_argument("n", type=int, help="probes measured")
    parser.add_argument("c", type=int, help="concurrency")
    args = parser.parse_args()
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        runner.run(run(args.url, WARMUP, args.c))
        before = resource.getrusage(resource.RUSAGE_SELF)
        failed = runner.run(run(args.url, args.n, args.c))
        after = resource.getrusage(resource.RUSAGE_SELF)
    user = (after.ru_utime - before.ru_utime) / args.n * 1e6
    total = user + (after.ru_stime - before.ru_stime) / args.n * 1e6
    print(f"user {user:.1f} µs/probe; user+sys {total:.1f} µs/probe; failed {failed}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
