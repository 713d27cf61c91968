"""Wall time of ``wsmon config check`` on a config of N targets that carry tokens.

Every target has its own token in the path and its own key in the query
(``wss://node<i>.example.com/v3/<32 hex>?apikey=<16 hex>``), written in the file or read from
a ``url_file`` each (``--source``). Tokens share their first
characters ("/v3/"), the case where registering every URL path as a secret took minutes::

    .venv/bin/python bench/config_check_scale.py                       # 20,000 targets, in the file
    .venv/bin/python bench/config_check_scale.py --targets 5000 --source file --repeat 3

Which wsmon runs: whatever ``python -m wsmon`` imports, i.e. this checkout unless
``PYTHONPATH`` points at another copy. Prints one line per run and the medians; on a busy
machine the CPU time (user + system of the child) is the steadier figure.
"""

from __future__ import annotations

import argparse
import resource
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def write_config(directory: Path, count: int, source: str) -> Path:
    tables = []
    for i in range(count):
        url = f"wss://node{i}.example.com/v3/{secrets.token_hex(16)}?apikey={secrets.token_hex(8)}"
        if source == "file":
            url_file = directory / f"url-{i}"
            url_file.write_text(url + "\n")
            where = f'url_file = "{url_file}"'
        else:
            where = f'url = "{url}"'
        tables.append(f'[[targets]]\nname = "node{i}"\n{where}\n')
    path = directory / "targets.toml"
    path.write_text("\n".join(tables))
    return path


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--targets", type=int, default=20_000)
    parser.add_argument("--source", choices=("literal", "file"), default="literal")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--timeout", type=float, default=600.0, help="give up on a run after this many seconds")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="wsmon-bench-") as tmp:
        path = write_config(Path(tmp), args.targets, args.source)
        times, cpus = [], []
        for run in range(1, args.repeat + 1):
            started, before = time.perf_counter(), resource.getrusage(resource.RUSAGE_CHILDREN)
            result = subprocess.run(
                [sys.executable, "-m", "wsmon", "config", "check", str(path)],
                capture_output=True,
                text=True,
                timeout=args.timeout,
                check=False,
            )
            elapsed, after = time.perf_counter() - started, resource.getrusage(resource.RUSAGE_CHILDREN)
            cpu = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
            if result.returncode != 0:
                print(result.stdout + result.stderr, file=sys.stderr)
                return 1
            times.append(elapsed)
            cpus.append(cpu)
            print(f"run {run}: {elapsed:.2f} s wall, {cpu:.2f} s CPU ({args.targets} targets, tokens {args.source})")
        print(f"median {statistics.median(times):.2f} s wall, {statistics.median(cpus):.2f} s CPU")
    return 0


if __name__ == "__main__":
    sys.exit(main())
