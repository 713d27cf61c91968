"""Two copies of wsmon side by side in persistent mode: which costs less CPU, to within ~2 %.

``persistent_load.py`` measures one wsmon at a time, windows minutes apart; on this shared host
a window's CPU moves by 10-20 % from one to the next (the same code read 0.22 and 0.32 core in
one run), so a change worth 5 % cannot be seen there. Here both copies run at once, each with
``--targets`` persistent connections on echo servers of its own (multiecho), and each window
measures both over the same seconds: what the host does to one, it does to the other, and the
ratio B/A of each window stays within ~2 % (two copies of the same code: 0.975-1.000).

    PYTHONPATH=$PWD .venv/bin/python bench/persistent_ab.py /path/to/copy-a /path/to/copy-b

A and B are directories holding a ``wsmon`` package (a ``git worktree`` of another commit, say).
Run the same copy as both first (an A/A run) to see the spread on the day. Every window is
printed; the verdict is the median of the windows' ratios, with their range.

What it is not: a yardstick. Side by side, each copy's servers and the other copy share the two
cores, so each costs more than it does alone (gopersist run this way beside wsmon came out
level with it, where alone it costs ~1.3× wsmon): compare copies of wsmon with it, and judge
against gopersist with ``persistent_load.py``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from persistent_load import (
    LogWatch,
    Processes,
    cpu_seconds,
    descriptors_for,
    ensure_multiecho,
    raise_nofile,
    start_servers,
    wait_listening,
    write_config,
    wsmon_argv,
)
from probe_cpu import RESULTS, free_port

# After the last connection is up: a window's length (every ring full) and wsmon's heap frozen
# (serve.HEAP_SETTLE, 30 s after start-up), so that both copies run as they do for days.
SETTLE = 40.0


def start_copy(label: str, copy: Path, n: int, procs: Processes, tmp: Path) -> tuple[Any, Path]:
    """Copy ``copy``'s wsmon serving ``n`` persistent targets on servers of its own."""
    if not (copy / "wsmon" / "__init__.py").exists():
        raise SystemExit(f"{copy} holds no wsmon package: give a directory with wsmon/ in it")
    servers = argparse.Namespace(url_style="port", targets=n, delayed=0, sample=0, no_capture=True, pong_delay_ms=0.0)
    plan, _ = start_servers(servers, procs, tmp)
    config = tmp / f"targets-{label}.toml"
    write_config(config, plan.targets, window=30.0, timeout=10.0)
    web, log = free_port(), tmp / f"wsmon-{label}.log"
    env = {**os.environ, "PYTHONPATH": str(copy)}
    wsmon = procs.start(f"wsmon-{label}", wsmon_argv(config, web), out=log, cwd=tmp, env=env)
    wait_listening(web, wsmon, f"wsmon {label}", limit=60)
    return wsmon, log


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("a", type=Path, help="directory holding copy A's wsmon/")
    parser.add_argument("b", type=Path, help="directory holding copy B's wsmon/")
    parser.add_argument("--targets", type=int, default=5000, help="persistent targets per copy (default 5000)")
    parser.add_argument("--windows", type=int, default=4, help="windows measured (default 4)")
    parser.add_argument("--seconds", type=float, default=20.0, help="length of a window (default 20)")
    args = parser.parse_args()
    n = args.targets
    raise_nofile(descriptors_for(n))
    ensure_multiecho()
    tmp = Path(tempfile.mkdtemp(prefix="wsmon-ab-", dir="/tmp"))
    print(f"work files in {tmp}", file=sys.stderr)
    procs = Processes()
    rows: list[dict[str, float]] = []
    try:
        copies = {
            label: start_copy(label, path.resolve(), n, procs, tmp) for label, path in (("a", args.a), ("b", args.b))
        }
        watches = {label: LogWatch(log) for label, (_, log) in copies.items()}
        deadline = time.monotonic() + 300
        while not all(w.connected() == n for w in watches.values()):
            for label, watch in watches.items():
                watch.poll()
                if copies[label][0].poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"copy {label}: {watch.connected()} of {n} connected; see {copies[label][1]}")
            time.sleep(0.2)
        print(f"{n} + {n} connected; settling {SETTLE:g}s", file=sys.stderr)
        time.sleep(SETTLE)
        pids = {label: proc.pid for label, (proc, _) in copies.items()}
        for i in range(1, args.windows + 1):
            before, t0 = {label: cpu_seconds(pid) for label, pid in pids.items()}, time.monotonic()
            time.sleep(args.seconds)
            after, t1 = {label: cpu_seconds(pid) for label, pid in pids.items()}, time.monotonic()
            row = {}
            for label in pids:
                row[label] = (sum(after[label]) - sum(before[label])) / (t1 - t0)
                row[f"{label}_user"] = (after[label][0] - before[label][0]) / (t1 - t0)
            row["ratio"] = row["b"] / row["a"]
            rows.append(row)
            print(
                f"window {i}: A {row['a']:.3f} cores (user {row['a_user']:.3f})  "
                f"B {row['b']:.3f} cores (user {row['b_user']:.3f})  B/A {row['ratio']:.3f}"
            )
    finally:
        procs.stop_all()
    ratios = [row["ratio"] for row in rows]
    median = statistics.median(ratios)
    print(f"B/A over {len(ratios)} windows of {args.seconds:g}s, {n} targets each: median {median:.3f}", end=" ")
    print(f"(from {min(ratios):.3f} to {max(ratios):.3f})")
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / f"persistent_ab-{time.strftime('%Y%m%d-%H%M%S')}.json"
    out.write_text(json.dumps({"a": str(args.a), "b": str(args.b), "targets": n, "windows": rows}, indent=1))


if __name__ == "__main__":
    main()
