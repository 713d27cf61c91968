"""Push under load: 10,000 persistent targets pinged every second, pushed to VictoriaMetrics.

Starts goecho (bench/bin, see probe_cpu.py), a victoria-metrics and `wsmon serve` with N
persistent targets and one [[push]] every INTERVAL seconds; after the connections settle,
measures wsmon's CPU over a window and reads back the push times from VictoriaMetrics (a
pushed sample carries no timestamp: VictoriaMetrics stamps it on arrival), giving the
intervals between pushes (jitter), plus wsmon's own push duration and payload size.

    .venv/bin/python bench/push_jitter.py [--targets 10000] [--interval 5] [--seconds 90]
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import resource
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from pathlib import Path

from probe_cpu import BIN, ensure_goref, free_port


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().split()
    return (int(fields[13]) + int(fields[14])) / os.sysconf("SC_CLK_TCK")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--targets", type=int, default=10_000)
    parser.add_argument("--interval", type=float, default=5.0, help="push interval, seconds")
    parser.add_argument("--seconds", type=float, default=90.0, help="measured window")
    args = parser.parse_args()
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    ensure_goref()
    work = Path(tempfile.mkdtemp(prefix="wsmon-push-"))
    echo, vm, web = free_port(), free_port(), free_port()
    config = [f'[[push]]\nname = "vm"\nurl = "http://127.0.0.1:{vm}"\ninterval = "{args.interval}s"\n']
    config += [
        f'[[targets]]\nname = "t{i}"\nurl = "ws://127.0.0.1:{echo}/"\nmode = "persistent"\n'
        for i in range(args.targets)
    ]
    (work / "targets.toml").write_text("".join(config))
    started: list[subprocess.Popen[bytes]] = []

    def quiet(argv: list[str]) -> subprocess.Popen[bytes]:
        return subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    try:
        started.append(quiet([str(BIN / "goecho"), "-addr", f"127.0.0.1:{echo}"]))
        vm_argv = [f"-httpListenAddr=127.0.0.1:{vm}", f"-storageDataPath={work / 'vm'}", "-loggerLevel=ERROR"]
        started.append(quiet(["victoria-metrics", *vm_argv]))
        time.sleep(1)
        wsmon_argv = [sys.executable, "-m", "wsmon", "serve", "--config", str(work / "targets.toml")]
        wsmon_argv += ["--web.listen-address", f"127.0.0.1:{web}", "--log.format", "json"]
        with (work / "wsmon.log").open("wb") as log:
            wsmon = subprocess.Popen(wsmon_argv, stdout=log, stderr=subprocess.STDOUT)
        started.append(wsmon)
        time.sleep(15)  # connect and settle
        cpu0, began = cpu_seconds(wsmon.pid), time.time()
        time.sleep(args.seconds)
        cpu1, ended = cpu_seconds(wsmon.pid), time.time()
        urllib.request.urlopen(f"http://127.0.0.1:{vm}/internal/force_flush").read()
        time.sleep(1)
        match = urllib.parse.quote('{__name__="probe_success",target="t0"}')
        export = urllib.request.urlopen(f"http://127.0.0.1:{vm}/api/v1/export?match[]={match}").read()
        stamps = [t / 1000 for t in json.loads(export.splitlines()[0])["timestamps"] if t / 1000 >= began]
        gaps = [b - a for a, b in itertools.pairwise(stamps)]
        own = urllib.request.urlopen(f"http://127.0.0.1:{web}/metrics").read().decode().splitlines()
        print(f"{args.targets} persistent targets, push every {args.interval:g}s, window {ended - began:.0f}s")
        print(f"wsmon cores {(cpu1 - cpu0) / (ended - began):.3f}; pushes in the window {len(stamps)}")
        print(
            f"push intervals, s: min {min(gaps):.3f} median {statistics.median(gaps):.3f} "
            f"max {max(gaps):.3f} stdev {statistics.pstdev(gaps):.3f}"
        )
        print("\n".join(line for line in own if line.startswith("wsmon_push_")))
    finally:
        for process in started:
            process.send_signal(signal.SIGTERM)
        for process in started:
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()


if __name__ == "__main__":
    main()
