"""CPU per probe: wsmon's probe() against goprobe (Go + gorilla/websocket), same goecho, one run.

For each case (concurrency C, N probes) the tools run in turns, REPS times each, their order
alternating from one repetition to the next; each run's whole-process CPU (user + sys, from
``os.wait4``) is divided by N. Reported: the median CPU µs per probe of each tool and the
ratio wsmon / goprobe, both as measured and net of start-up (a run of one probe, measured the
same way, is subtracted: Python's start-up and imports would otherwise weigh on small N).
The table goes to stdout, every run to ``bench/results/probe_cpu-<time>.json``.

``--profile`` instead runs the wsmon driver once under cProfile (the last case) and prints
its top 25 functions by own time.

goprobe and goecho are built into bench/bin/ by build-goref when missing. See bench/README.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import pstats
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
BIN = BENCH / "bin"
RESULTS = BENCH / "results"
DRIVER = BENCH / "wsmon_probe_load.py"
# build-goref and its Go sources live next to this file once copied into the repository; until
# then the shared copy is used. GOREF_BUILD overrides both.
BUILD_GOREF_CANDIDATES = (BENCH / "build-goref", Path("/work/shared/bench/build-goref"))
RUN_LIMIT = 300.0  # seconds; a run that takes longer is killed and the benchmark fails

# goprobe's summary line, which the wsmon driver prints too.
SUMMARY = re.compile(
    r"(?P<rate>[\d.]+) probes/s; errors (?P<errors>\d+); connect p50 (?P<connect_p50>[\d.]+)ms "
    r"p99 (?P<connect_p99>[\d.]+)ms; ping p50 (?P<ping_p50>[\d.]+)ms"
)


@dataclass(frozen=True)
class Tool:
    """A load generator: argv for (url, n, c), printing the SUMMARY line."""

    name: str
    argv: Callable[[str, int, int], list[str]]
    env: dict[str, str] | None = None  # None: this process' environment


@dataclass
class Run:
    tool: str
    concurrency: int
    n: int
    cpu_s: float  # user + sys of the whole process
    user_s: float
    sys_s: float
    wall_s: float
    rate: float
    errors: int
    connect_p50_ms: float
    connect_p99_ms: float
    ping_p50_ms: float

    @property
    def cpu_us_per_probe(self) -> float:
        return self.cpu_s / self.n * 1e6


def goprobe_tool() -> Tool:
    return Tool("goprobe", lambda url, n, c: [str(BIN / "goprobe"), "-url", url, "-n", str(n), "-c", str(c)])


def wsmon_tool(loop: str, profile_to: Path | None = None, copy: Path | None = None) -> Tool:
    """wsmon's driver; with ``copy``, importing wsmon from that other checkout (PYTHONPATH)."""

    def argv(url: str, n: int, c: int) -> list[str]:
        python = [sys.executable]
        if profile_to is not None:
            python += ["-m", "cProfile", "-o", str(profile_to)]
        return [*python, str(DRIVER), "-url", url, "-n", str(n), "-c", str(c), "--loop", loop]

    if copy is None:
        return Tool("wsmon", argv)
    return Tool("compared", argv, env={**os.environ, "PYTHONPATH": str(copy)})


# --- processes ------------------------------------------------------------------------------


def ensure_goref() -> None:
    if (BIN / "goprobe").exists() and (BIN / "goecho").exists():
        return
    override = os.environ.get("GOREF_BUILD")
    candidates = (Path(override),) if override else BUILD_GOREF_CANDIDATES
    script = next((p for p in candidates if p.exists()), None)
    if script is None:
        sys.exit(f"goprobe/goecho missing from {BIN} and no build-goref found (set GOREF_BUILD)")
    print(f"building goprobe and goecho with {script} …", file=sys.stderr)
    subprocess.run([str(script), str(BIN)], check=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@contextmanager
def goecho() -> Iterator[str]:
    """A goecho on a free loopback port, for as long as the block runs; yields its URL."""
    port = free_port()
    proc = subprocess.Popen(
        [str(BIN / "goecho"), "-addr", f"127.0.0.1:{port}"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"goecho did not start listening on port {port}") from None
                time.sleep(0.05)
        yield f"ws://127.0.0.1:{port}/"
    finally:
        proc.terminate()
        proc.wait()


def measure(tool: Tool, url: str, n: int, c: int) -> Run:
    """Run ``tool`` to completion; its CPU comes from wait4, so nothing else is counted."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        began = time.perf_counter()
        proc = subprocess.Popen(tool.argv(url, n, c), stdout=out, stderr=err, env=tool.env)
        watchdog = threading.Timer(RUN_LIMIT, proc.kill)
        watchdog.start()
        try:
            _, status, usage = os.wait4(proc.pid, 0)
        finally:
            watchdog.cancel()
        proc.returncode = os.waitstatus_to_exitcode(status)  # reaped here, not by Popen
        wall = time.perf_counter() - began
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read().decode(errors="replace"), err.read().decode(errors="replace")
    found = SUMMARY.search(stdout)
    if proc.returncode != 0 or found is None:
        why = f"exit {proc.returncode}" if proc.returncode else "no summary line"
        tail = "\n".join((stdout + stderr).strip().splitlines()[-15:])
        raise RuntimeError(f"{tool.name} -n {n} -c {c} failed ({why}):\n{tail}")
    return Run(
        tool=tool.name,
        concurrency=c,
        n=n,
        cpu_s=usage.ru_utime + usage.ru_stime,
        user_s=usage.ru_utime,
        sys_s=usage.ru_stime,
        wall_s=wall,
        rate=float(found["rate"]),
        errors=int(found["errors"]),
        connect_p50_ms=float(found["connect_p50"]),
        connect_p99_ms=float(found["connect_p99"]),
        ping_p50_ms=float(found["ping_p50"]),
    )


# --- the comparison ---------------------------------------------------------------------------


def compare(tools: list[Tool], cases: list[tuple[int, int]], reps: int) -> tuple[list[Run], list[Run]]:
    """Every tool REPS times per case, taking turns; plus REPS one-probe runs for start-up."""
    runs: list[Run] = []
    startup: list[Run] = []
    with goecho() as url:
        for tool in tools:  # warm-up: page cache, goecho's first connections; not kept
            measure(tool, url, 200, 10)
        for rep in range(reps):
            for tool in tools if rep % 2 == 0 else tools[::-1]:
                startup.append(measure(tool, url, 1, 1))
        for c, n in cases:
            for rep in range(reps):
                for tool in tools if rep % 2 == 0 else tools[::-1]:
                    run = measure(tool, url, n, c)
                    runs.append(run)
                    print(
                        f"  c={c} n={n} {tool.name:8} rep {rep + 1}: "
                        f"{run.cpu_us_per_probe:6.0f} µs/probe, {run.rate:.0f} probes/s",
                        file=sys.stderr,
                    )
    return runs, startup


def summarize(runs: list[Run], startup: list[Run], tools: list[Tool]) -> list[dict[str, object]]:
    """One row per (case, tool): medians; the start-up CPU median is subtracted for 'net'."""
    start_cpu = {t.name: statistics.median(r.cpu_s for r in startup if r.tool == t.name) for t in tools}
    rows: list[dict[str, object]] = []
    for c, n in dict.fromkeys((r.concurrency, r.n) for r in runs):
        for tool in tools:
            mine = [r for r in runs if (r.concurrency, r.n, r.tool) == (c, n, tool.name)]
            per_probe = [r.cpu_us_per_probe for r in mine]
            rows.append(
                {
                    "concurrency": c,
                    "n": n,
                    "tool": tool.name,
                    "cpu_us_per_probe": statistics.median(per_probe),
                    "cpu_us_per_probe_min": min(per_probe),
                    "cpu_us_per_probe_max": max(per_probe),
                    "net_cpu_us_per_probe": statistics.median(
                        (r.cpu_s - start_cpu[tool.name]) / (n - 1) * 1e6 for r in mine
                    ),
                    "sys_us_per_probe": statistics.median(r.sys_s / n * 1e6 for r in mine),
                    "startup_cpu_ms": start_cpu[tool.name] * 1e3,
                    "rate": statistics.median(r.rate for r in mine),
                    "errors": sum(r.errors for r in mine),
                    "connect_p50_ms": statistics.median(r.connect_p50_ms for r in mine),
                    "ping_p50_ms": statistics.median(r.ping_p50_ms for r in mine),
                }
            )
    return rows


def print_table(rows: list[dict[str, object]]) -> None:
    head = (
        f"{'C':>3} {'N':>5}  {'tool':8} {'probes/s':>8} {'errors':>6} {'conn p50':>8} {'ping p50':>8}"
        f"  {'CPU µs/probe (min–max)':>24}  {'net µs/probe':>12}"
    )
    print(head)
    print("-" * len(head))
    by_case: dict[tuple[object, object], dict[object, dict[str, object]]] = {}
    for row in rows:
        by_case.setdefault((row["concurrency"], row["n"]), {})[row["tool"]] = row
    for (c, n), tools in by_case.items():
        for name, r in tools.items():
            spread = f"{r['cpu_us_per_probe']:.0f} ({r['cpu_us_per_probe_min']:.0f}–{r['cpu_us_per_probe_max']:.0f})"
            print(
                f"{c:>3} {n:>5}  {name:8} {r['rate']:>8.0f} {r['errors']:>6} "
                f"{r['connect_p50_ms']:>6.2f}ms {r['ping_p50_ms']:>6.3f}ms  {spread:>24}  "
                f"{r['net_cpu_us_per_probe']:>12.0f}"
            )
        for other in ("goprobe", "compared"):
            if "wsmon" in tools and other in tools:
                w, g = tools["wsmon"], tools[other]
                whole = w["cpu_us_per_probe"] / g["cpu_us_per_probe"]  # type: ignore[operator]
                net = w["net_cpu_us_per_probe"] / g["net_cpu_us_per_probe"]  # type: ignore[operator]
                print(f"{'':10}{f'wsmon / {other}':>48}  {whole:>23.2f}×  {net:>11.2f}×")
    starts = {r["tool"]: r["startup_cpu_ms"] for r in rows}
    print("start-up CPU (a one-probe run): " + ", ".join(f"{t} {ms:.0f} ms" for t, ms in starts.items()))


def wsmon_origin() -> dict[str, str]:
    """Which wsmon the driver imports (PYTHONPATH may point at an experiment) and its git state."""
    where = subprocess.run(
        [sys.executable, "-c", "import wsmon; print(wsmon.__file__)"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    origin = {"wsmon": where}
    if shutil.which("git") and Path(where).resolve().is_relative_to(ROOT):
        rev = subprocess.run(
            ["git", "-C", str(ROOT), "describe", "--always", "--dirty"], capture_output=True, text=True
        )
        origin["git"] = rev.stdout.strip()
    return origin


# --- the profile ------------------------------------------------------------------------------


def profile(case: tuple[int, int], loop: str) -> None:
    c, n = case
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / f"probe_cpu-{time.strftime('%Y%m%d-%H%M%S')}.prof"
    with goecho() as url:
        run = measure(wsmon_tool(loop, profile_to=out), url, n, c)
    print(f"wsmon under cProfile, c={c} n={n}: {run.rate:.0f} probes/s, {run.cpu_us_per_probe:.0f} µs/probe")
    print(f"profile saved to {out.relative_to(ROOT)}")
    pstats.Stats(str(out)).sort_stats("tottime").print_stats(25)


# --- main -------------------------------------------------------------------------------------


def parse_case(text: str) -> tuple[int, int]:
    c, _, n = text.partition(":")
    try:
        case = int(c), int(n)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected C:N, e.g. 50:3000, got {text!r}") from None
    if case[0] < 1 or case[1] < 2:
        raise argparse.ArgumentTypeError("C must be ≥ 1 and N ≥ 2")
    return case


def main() -> int:
    try:
        return bench()
    except (RuntimeError, subprocess.CalledProcessError) as exc:
        print(f"probe_cpu: {exc}", file=sys.stderr)
        return 2


def bench() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--case",
        type=parse_case,
        action="append",
        metavar="C:N",
        help="concurrency:probes, repeatable (default: 1:1000 and 50:3000)",
    )
    parser.add_argument("--reps", type=int, default=5, help="runs per tool and case (default 5)")
    parser.add_argument(
        "--loop", choices=("uvloop", "asyncio"), default="uvloop", help="wsmon's event loop (default uvloop)"
    )
    parser.add_argument("--profile", action="store_true", help="only profile the wsmon driver (last case)")
    parser.add_argument(
        "--compare",
        type=Path,
        metavar="DIR",
        help="also run the driver on the wsmon of another checkout (e.g. a git worktree of an older commit)",
    )
    args = parser.parse_args()
    cases: list[tuple[int, int]] = args.case or [(1, 1000), (50, 3000)]

    ensure_goref()
    if args.profile:
        profile(cases[-1], args.loop)
        return 0

    tools = [goprobe_tool(), wsmon_tool(args.loop)]
    if args.compare is not None:
        if not (args.compare / "wsmon" / "__init__.py").is_file():
            print(f"probe_cpu: --compare {args.compare}: no wsmon package there", file=sys.stderr)
            return 2
        tools.append(wsmon_tool(args.loop, copy=args.compare.resolve()))
    origin = wsmon_origin()
    print(f"wsmon from {origin['wsmon']} on {args.loop}; {args.reps} runs per tool and case", file=sys.stderr)
    began = time.time()
    runs, startup = compare(tools, cases, args.reps)
    rows = summarize(runs, startup, tools)
    print_table(rows)

    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"probe_cpu-{time.strftime('%Y%m%d-%H%M%S', time.localtime(began))}.json"
    report = {
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(began)),
        "host": {"cpus": os.cpu_count(), "machine": platform.machine(), "python": platform.python_version()},
        "loop": args.loop,
        "reps": args.reps,
        "compared": None if args.compare is None else str(args.compare),
        **origin,
        "summary": rows,
        "runs": [asdict(r) for r in runs],
        "startup_runs": [asdict(r) for r in startup],
    }
    path.write_text(json.dumps(report, indent=2) + "\n")
    print(f"results: {path.relative_to(ROOT)}")
    if any(r.errors for r in runs):
        print("some probes failed: the CPU figures are not comparable", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
