"""CPU, loop stalls and memory of a ``/metrics`` scrape of 10,000 persistent targets, in-process.

Builds a Store of N persistent targets (connected, full rolling windows: a pong a second for
longer than the window, as after the first minutes of a real run; one target in ten with a
ping timeout counted) and scrapes it, on uvloop, two ways:

- ``render``: the targets' text alone, consumed as /metrics would (no HTTP);
- ``http``: ``GET /metrics`` of the real app under uvicorn, read by a client in another process;
- ``push`` (with ``--mode push`` or ``all``): the text gzipped as a push to VictoriaMetrics
  does (CPU of the compressing threads included), not sent.

For each: CPU of this process per scrape (user + system, ``getrusage``), the longest event-loop
turn while it runs (a callback that re-queues itself with ``call_soon`` runs once per turn:
the gap between two runs is the turn, in this thread's CPU time and in wall time; measured in
scrapes of their own, since it keeps the loop busy; "turns >5ms" counts CPU time), and the peak
memory during a scrape (VmHWM, reset through /proc/self/clear_refs, minus
VmRSS before it). Medians over ``--scrapes`` scrapes.

Given ``--compare PATH`` (the root of another copy of wsmon, e.g. a ``git worktree`` of an older
commit; repeatable), runs the same in turns with that copy on PYTHONPATH, and prints all::

    git worktree add /tmp/render-base <older commit>
    .venv/bin/python bench/render_cpu.py --compare /tmp/render-base
    .venv/bin/python bench/render_cpu.py --targets 1000 --scrapes 3        # a quick look

The machine's other work inflates CPU figures: compare copies in the same run (``--rounds``
alternates them), and read medians.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import random
import resource
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
LONG_TURN = 0.005  # seconds: a turn longer than this delays pings enough to matter

# One scrape per line read; started once, so that no fork of this big process lands in a turn.
_CLIENT = """
import http.client, sys
for _ in sys.stdin:
    conn = http.client.HTTPConnection("127.0.0.1", int(sys.argv[1]), timeout=60)
    conn.request("GET", "/metrics")
    response = conn.getresponse()
    size = 0
    while chunk := response.read(65536):
        size += len(chunk)
    conn.close()
    print(size, flush=True)
"""


def build_store(targets: int, window: float, labels: bool, preset: str = "full") -> Any:
    """N persistent targets, connected, with full windows and histograms, exporting the series
    of the series-budget ``preset`` (copies of wsmon older than series budgets: all of them)."""
    from wsmon.config import file
    from wsmon.config.file import Target
    from wsmon.continuous.store import ConnectionState, Store
    from wsmon.probe.module import BUILTIN_MODULES
    from wsmon.probe.reasons import Reason

    persistent = getattr(getattr(file, "Mode", None), "PERSISTENT", "persistent")  # a str before the enum
    rnd = random.Random(1)
    store = Store()
    now = time.perf_counter()
    module = BUILTIN_MODULES["ping"]
    for i in range(targets):
        own = (("chain", "eth"), ("region", ("eu", "us", "ap")[i % 3])) if labels else ()
        target = Target(
            name=f"t{i:05d}",
            url=f"ws://127.0.0.1:1/{i}",
            module=module,
            mode=persistent,  # type: ignore[arg-type]  # a str in copies before the Mode enum
            labels=own,
            **_budget(preset),
        )
        state = store.add(target, window=window, sample_interval=1.0)
        state.state = ConnectionState.CONNECTING
        state.record_connected(rnd.uniform(0.0005, 0.02))
        pongs = state.window.capacity  # a pong a second, for longer than the window
        for k in range(pongs):
            state.record_pong(rnd.lognormvariate(-7.0, 0.6), now - (pongs - 1 - k))
        if i % 10 == 0:
            state.record_failure(Reason.PING_TIMEOUT, "no pong within 10s")
    return store


def _budget(preset: str) -> dict[str, Any]:
    if preset == "full":
        return {}  # also for copies without series budgets
    from wsmon.config.series import PRESETS

    return {"series": PRESETS[preset]}


def cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _status(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    return 0


def _reset_peak() -> bool:
    try:
        Path("/proc/self/clear_refs").write_text("5")  # resets VmHWM to the current RSS
    except OSError:
        return False
    return True


class GcMeter:
    """Collections by generation during a scrape, and the time they took (``gc.callbacks``)."""

    def __init__(self) -> None:
        self.counts = [0, 0, 0]
        self.pauses: list[float] = []
        self._started = 0.0

    def __enter__(self) -> GcMeter:
        gc.callbacks.append(self._callback)
        return self

    def __exit__(self, *_: object) -> None:
        gc.callbacks.remove(self._callback)

    def _callback(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._started = time.perf_counter()
        else:
            self.counts[info["generation"]] += 1
            self.pauses.append(time.perf_counter() - self._started)


class TurnMeter:
    """The gaps between two runs of a callback that re-queues itself: one loop turn each.

    Wall time, and this thread's CPU time: on a shared machine a turn can last longer than its
    work when the process waits for a core; the CPU time is the loop's own doing.
    """

    def __init__(self) -> None:
        self.loop = asyncio.get_running_loop()
        self.turns: list[float] = []
        self.cpu_turns: list[float] = []
        self._last = self._last_cpu = 0.0
        self._on = False

    def start(self) -> None:
        self._on, self.turns, self.cpu_turns = True, [], []
        self._last, self._last_cpu = time.perf_counter(), time.thread_time()
        self.loop.call_soon(self._spin)

    def stop(self) -> None:
        self._on = False

    def _spin(self) -> None:
        now, now_cpu = time.perf_counter(), time.thread_time()
        self.turns.append(now - self._last)
        self.cpu_turns.append(now_cpu - self._last_cpu)
        self._last, self._last_cpu = now, now_cpu
        if self._on:
            self.loop.call_soon(self._spin)


async def render_once(store: Any) -> int:
    """The targets' text, consumed as /metrics consumes it; returns its size."""
    from wsmon.continuous import series

    if hasattr(series, "stream_store"):
        size = 0
        async for chunk in series.stream_store(store):
            size += len(chunk)
        return size
    return len(await series.render_store(store))  # before streaming: one bytes object


async def push_once(store: Any) -> int:
    """What a push to VictoriaMetrics does before sending: the text, gzip level 1; returns the
    compressed size."""
    from wsmon.continuous import push, series

    if hasattr(push, "gzip_chunks"):
        compressed, _ = await push.gzip_chunks(series.stream_store(store))
        return len(compressed)
    import gzip

    body = await series.render_store(store)  # before streaming: whole, then gzip in a thread
    return len(await asyncio.to_thread(gzip.compress, body, 1))


async def serve_app(store: Any) -> tuple[Callable[[], Awaitable[int]], Callable[[], Awaitable[None]]]:
    """The real app under uvicorn on a free port; returns (scrape, stop)."""
    import uvicorn

    from wsmon.config.file import Config
    from wsmon.web.app import ExporterState, create_app

    class Monitor:  # what /metrics reads of the Monitor
        started = True

        def __init__(self) -> None:
            self.store = store

    try:
        from wsmon.config.live import LiveConfig
    except ImportError:  # before LiveConfig, the state held the config itself
        state = ExporterState(config=Config(), monitor=Monitor())  # type: ignore[call-arg, arg-type]
    else:
        state = ExporterState(live=LiveConfig(Config()), monitor=Monitor())  # type: ignore[arg-type]
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    config = uvicorn.Config(
        create_app(state), host="127.0.0.1", port=port, log_config=None, access_log=False, lifespan="off"
    )
    server = uvicorn.Server(config)
    task = asyncio.get_running_loop().create_task(server.serve())
    while not server.started:  # noqa: ASYNC110 - uvicorn offers no event
        await asyncio.sleep(0.01)

    client = await asyncio.create_subprocess_exec(
        sys.executable, "-c", _CLIENT, str(port), stdin=subprocess.PIPE, stdout=subprocess.PIPE
    )
    assert client.stdin is not None and client.stdout is not None
    stdin, stdout = client.stdin, client.stdout

    async def scrape() -> int:
        stdin.write(b"\n")
        return int(await stdout.readline())

    async def stop() -> None:
        stdin.close()
        await client.wait()
        server.should_exit = True
        await task

    return scrape, stop


async def measure(scrape: Callable[[], Awaitable[int]], scrapes: int) -> dict[str, Any]:
    meter = TurnMeter()
    cpus, longest, longest_cpu, long_turns, peaks = [], [], [], [], []
    size = await scrape()  # warm-up
    collections = GcMeter()
    for _ in range(scrapes):
        before = cpu()
        with collections:
            await scrape()
        cpus.append(cpu() - before)
    for _ in range(scrapes):
        meter.start()
        await scrape()
        meter.stop()
        await asyncio.sleep(0.05)
        longest.append(max(meter.turns))
        longest_cpu.append(max(meter.cpu_turns))
        long_turns.append(sum(turn > LONG_TURN for turn in meter.cpu_turns))
    for _ in range(min(scrapes, 3)):
        gc.collect()
        await asyncio.sleep(0.05)
        rss = _status("VmRSS")
        if not _reset_peak():
            break
        await scrape()
        peaks.append(_status("VmHWM") - rss)
    return {
        "bytes": size,
        "cpu": statistics.median(cpus),
        "cpus": cpus,
        "longest_turn": statistics.median(longest),
        "longest_turns": longest,
        "longest_cpu_turns": longest_cpu,
        "turns_over_5ms": statistics.median(long_turns),
        "peak": statistics.median(peaks) if peaks else None,
        "gc_per_scrape": [count / scrapes for count in collections.counts],
        "gc_seconds_per_scrape": sum(collections.pauses) / scrapes,
        "gc_longest": max(collections.pauses, default=0.0),
    }


async def child(args: argparse.Namespace) -> dict[str, Any]:
    started = time.perf_counter()
    store = build_store(args.targets, args.window, args.labels, args.series)
    if args.freeze:
        gc.freeze()  # as wsmon serve does after start-up
    result: dict[str, Any] = {"build_seconds": time.perf_counter() - started, "rss": _status("VmRSS")}
    if args.mode in ("render", "both", "all"):
        result["render"] = await measure(lambda: render_once(store), args.scrapes)
    if args.mode in ("push", "all"):
        result["push"] = await measure(lambda: push_once(store), args.scrapes)
    if args.mode in ("http", "both", "all"):
        scrape, stop = await serve_app(store)
        try:
            result["http"] = await measure(scrape, args.scrapes)
        finally:
            await stop()
    return result


def run_child(copy: Path, args: argparse.Namespace) -> dict[str, Any]:
    argv = [sys.executable, __file__, "--child", "--targets", str(args.targets), "--window", str(args.window)]
    argv += ["--scrapes", str(args.scrapes), "--mode", args.mode]
    argv += ["--labels"] * args.labels + ["--no-freeze"] * (not args.freeze) + ["--series", args.series]
    env = {**os.environ, "PYTHONPATH": str(copy)}
    out = subprocess.run(argv, env=env, check=True, capture_output=True, text=True)
    return dict(json.loads(out.stdout))


def _mib(value: float | None) -> str:
    return "n/a" if value is None else f"{value / 2**20:.1f} MiB"


def report(results: dict[str, list[dict[str, Any]]], args: argparse.Namespace) -> None:
    print(
        f"{args.targets} persistent targets ({args.series}), window {args.window:g} s, labels: {args.labels}, "
        f"gc.freeze after building: {args.freeze}; medians over {args.rounds} round(s) × {args.scrapes} scrapes"
    )
    for mode in ("render", "http", "push"):
        if not any(mode in r for runs in results.values() for r in runs):
            continue
        print(f"\n{mode}:")
        widths = {"CPU/scrape": 10, "longest turn: CPU": 18, "wall": 7, "turns >5ms": 10, "peak mem": 9, "body": 7}
        print(f"  {'copy':36s} " + " ".join(f"{name:>{width}s}" for name, width in widths.items()))
        for copy, runs in results.items():
            cpus = [c for r in runs for c in r[mode]["cpus"]]
            turns = [t for r in runs for t in r[mode]["longest_turns"]]
            cpu_turns = [t for r in runs for t in r[mode]["longest_cpu_turns"]]
            over = statistics.median(r[mode]["turns_over_5ms"] for r in runs)
            peaks = [r[mode]["peak"] for r in runs if r[mode]["peak"] is not None]
            print(
                f"  {copy:36s} {statistics.median(cpus):9.3f}s {statistics.median(cpu_turns) * 1000:16.1f}ms "
                f"{statistics.median(turns) * 1000:5.1f}ms {over:10g} "
                f"{_mib(statistics.median(peaks) if peaks else None):>9s} {runs[0][mode]['bytes'] / 1e6:5.1f}MB"
            )
            print(f"  {'':36s} CPU each: {' '.join(f'{c:.3f}' for c in cpus)}")
            gcs = [r[mode]["gc_per_scrape"] for r in runs]
            print(
                f"  {'':36s} collections per scrape (gen 0/1/2): "
                + "/".join(f"{statistics.mean(g[i] for g in gcs):.1f}" for i in range(3))
                + f", {statistics.mean(r[mode]['gc_seconds_per_scrape'] for r in runs) * 1000:.1f} ms in all,"
                f" longest {max(r[mode]['gc_longest'] for r in runs) * 1000:.1f} ms"
            )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--targets", type=int, default=10_000)
    parser.add_argument("--window", type=float, default=300.0, help="rolling window, seconds (wsmon's default)")
    parser.add_argument("--scrapes", type=int, default=5, help="scrapes measured per figure and run")
    parser.add_argument("--rounds", type=int, default=2, help="runs of each copy, in turns")
    parser.add_argument("--mode", choices=("render", "http", "push", "both", "all"), default="both")
    parser.add_argument("--labels", action="store_true", help="two labels of their own per target")
    parser.add_argument("--series", choices=("full", "lean"), default="full", help="the targets' series budget preset")
    parser.add_argument("--no-freeze", dest="freeze", action="store_false", help="no gc.freeze() after building")
    parser.add_argument(
        "--compare", type=Path, action="append", default=[], help="root of another copy of wsmon to run in turns"
    )
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        import uvloop

        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            print(json.dumps(runner.run(child(args))))
        return 0
    copies = [ROOT, *(path.resolve() for path in args.compare)]
    results: dict[str, list[dict[str, Any]]] = {str(copy): [] for copy in copies}
    for _ in range(args.rounds):
        for copy in copies:
            results[str(copy)].append(run_child(copy, args))
    report(results, args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
