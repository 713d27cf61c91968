"""Targets per core: one ``wsmon serve`` against the same targets split over shards on one host.

N persistent targets (pinged every second, on multiecho ports that answer at once) are watched
first by one ``wsmon serve``, then by S shards of the same ``targets.toml`` (``--shard I-of-S``,
a port each, as ``systemd/wsmon@.service`` runs them). Each run waits until every target is
connected, lets it settle, then measures every wsmon process' CPU (user + system, /proc) over a
window of ``--seconds`` while each is scraped every ``--scrape-every`` seconds (as a Prometheus
would). gopersist holding N connections, pinged every second, in the same run is the yardstick.

Reported: per run, each process' cores and marginal RSS at the end (30 s windows, as in
``persistent_load.py``: full by then), the total, and targets per core (N ÷ total cores): the
figure to size a host by (a core per shard, N/S targets each).

    .venv/bin/python bench/shards.py                          # 16,000 targets, 2 shards
    .venv/bin/python bench/shards.py --targets 4000 --seconds 20   # a quick look
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

from persistent_load import (
    SETTLE,
    Processes,
    cpu_seconds,
    ensure_gopersist,
    ensure_multiecho,
    machine_busy,
    measure_gopersist,
    memory_kb,
    plan_ports,
    raise_nofile,
    wait_listening,
    write_config,
    wsmon_argv,
)
from probe_cpu import RESULTS, free_port

CONNECT_LIMIT = 300.0  # seconds for every target to connect


def connected(port: int) -> int:
    """How many targets a wsmon reports connected (0 while it does not answer)."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=30) as response:
            text = response.read().decode()
    except OSError:
        return 0
    return sum(
        1
        for line in text.splitlines()
        if line.startswith("wsmon_connection_state{") and 'state="connected"} 1.0' in line
    )


def scraper(ports: list[int], every: float, stop: threading.Event) -> None:
    while not stop.wait(every):
        for port in ports:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=60) as response:
                response.read()


def measure(n: int, shards: int, config: Path, args: argparse.Namespace, procs: Processes, tmp: Path) -> dict[str, Any]:
    """One run: ``shards`` wsmon processes (1: no --shard) over ``config``'s ``n`` targets."""
    wsmons = []
    for index in range(shards):
        port = free_port()
        argv = wsmon_argv(config, port) + (["--shard", f"{index}-of-{shards}"] if shards > 1 else [])
        proc = procs.start(f"wsmon-{index}", argv, out=tmp / f"wsmon-{shards}-{index}.log")
        wait_listening(port, proc, f"wsmon shard {index}", limit=60)
        wsmons.append((port, proc, memory_kb(proc.pid)))
    began = time.monotonic()
    while sum(connected(port) for port, _, _ in wsmons) < n:
        if time.monotonic() - began > CONNECT_LIMIT:
            raise RuntimeError(f"not every target connected within {CONNECT_LIMIT:g}s")
        time.sleep(2.0)
    connect_s = time.monotonic() - began
    print(f"{shards} process(es): {n} connected in {connect_s:.0f}s; settling {SETTLE:g}s …", file=sys.stderr)
    time.sleep(SETTLE)
    stop = threading.Event()
    thread = threading.Thread(target=scraper, args=([p for p, _, _ in wsmons], args.scrape_every, stop))
    cpu0 = [sum(cpu_seconds(proc.pid)) for _, proc, _ in wsmons]
    busy0, t0 = machine_busy(), time.monotonic()
    thread.start()
    time.sleep(args.seconds)
    stop.set()
    thread.join()
    elapsed = time.monotonic() - t0
    cpu1 = [sum(cpu_seconds(proc.pid)) for _, proc, _ in wsmons]
    busy1 = machine_busy()
    per_process = [
        {
            "targets": connected(port),
            "cores": (after - before) / elapsed,
            "rss_kb": memory_kb(proc.pid),
            "rss_kb_per_target": (memory_kb(proc.pid) - start_rss) / max(1, n / shards),
        }
        for (port, proc, start_rss), before, after in zip(wsmons, cpu0, cpu1, strict=True)
    ]
    for _, proc, _ in wsmons:
        procs.stop(proc)
    total = sum(p["cores"] for p in per_process)
    return {
        "processes": shards,
        "connect_s": connect_s,
        "seconds": elapsed,
        "per_process": per_process,
        "cores": total,
        "targets_per_core": n / total,
        "machine_task_cores": (busy1[0] - busy0[0]) / elapsed,
        "loadavg": Path("/proc/loadavg").read_text().split()[:3],
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--targets", type=int, default=16_000, help="(the single wsmon needs a descriptor each)")
    parser.add_argument("--shards", type=int, default=2)
    parser.add_argument("--seconds", type=float, default=45.0, help="the measured window of each run")
    parser.add_argument("--scrape-every", type=float, default=15.0, help="seconds between scrapes of each process")
    args = parser.parse_args()
    n = args.targets
    raise_nofile(n + 2048)  # per process: the single wsmon holds n sockets (a multiecho, 2 a port of its 4,000)
    ensure_multiecho()
    ensure_gopersist()
    procs = Processes()
    try:
        with tempfile.TemporaryDirectory(prefix="wsmon-shards-") as directory:
            tmp = Path(directory)
            plan = plan_ports(n, 0, 0, 0.0)
            servers = {name: procs.start(name, argv, out=tmp / f"{name}.log") for name, argv, _ in plan.servers}
            config = tmp / "targets.toml"
            write_config(config, plan.targets, window=30.0, timeout=10.0)  # full by the end of a window
            time.sleep(2.0)  # the servers listening
            runs = [measure(n, 1, config, args, procs, tmp), measure(n, args.shards, config, args, procs, tmp)]
            gopersist = measure_gopersist(n, args.seconds, procs, tmp, CONNECT_LIMIT, servers)
    finally:
        procs.stop_all()
    result = {"targets": n, "args": vars(args), "runs": runs, "gopersist": gopersist}
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / f"shards-{time.strftime('%Y%m%d-%H%M%S')}.json"
    out.write_text(json.dumps(result, indent=2))
    report(result)
    print(f"results: {out.relative_to(RESULTS.parent.parent)}")
    return 0


def report(result: dict[str, Any]) -> None:
    n = result["targets"]
    go = result["gopersist"]
    print(f"{n} persistent targets, pinged every second, /metrics scraped every {result['args']['scrape_every']:g}s")
    print(f"{'run':>22} {'cores':>7} {'per process':>24} {'RSS KB/target':>14} {'targets/core':>13}")
    for run in result["runs"]:
        cores = ", ".join(f"{p['cores']:.3f}" for p in run["per_process"])
        rss = statistics.median(p["rss_kb_per_target"] for p in run["per_process"])
        per_core = run["targets_per_core"]
        print(f"{run['processes']:>12} process(es) {run['cores']:7.3f} {cores:>24} {rss:14.2f} {per_core:13.0f}")
    print(f"{'gopersist':>22} {go['cores']:7.3f} {'':>24} {'':>14} {n / go['cores']:13.0f}")
    print(f"load average at the end of each run: {[run['loadavg'] for run in result['runs']]}")


if __name__ == "__main__":
    sys.exit(main())
