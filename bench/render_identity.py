"""Whether two copies of wsmon write the same ``/metrics`` text, byte for byte, for the same Store.

A change meant to make the render cheaper must not change a byte of it. This builds the Store of
``render_cpu.py`` (N persistent targets, full windows, the same seed) with the clocks held still
(so ``connected_since`` and every window's cut are the same in every copy), sends ``GET /metrics``
through the real app (Starlette's streamed response included), and prints the body's size and
SHA-256 for this copy and each ``--compare`` copy, each in a process of its own::

    git worktree add /tmp/render-base <older commit>
    .venv/bin/python bench/render_identity.py --compare /tmp/render-base
    .venv/bin/python bench/render_identity.py --compare /tmp/render-base --labels --series lean

The exporter's own series (process CPU, memory: different in every run) are left out: what the
app sends before the targets' text is replaced by a fixed line. Exit status 1 if the copies differ.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
WALL = 1_796_000_000.123_456  # time.time() while the Store is built (connected_since, errors)
MONO = 123_456.789  # perf_counter(): the pongs' times, and where /metrics cuts the windows
OWN = b"# the exporter's own series, left out\n"


def _build(args: argparse.Namespace) -> Any:
    sys.path.insert(0, str(ROOT / "bench"))
    import render_cpu

    wall, mono = time.time, time.perf_counter
    time.time, time.perf_counter = (lambda: WALL), (lambda: MONO)
    try:
        return render_cpu.build_store(args.targets, args.window, args.labels, args.series)
    finally:
        time.time, time.perf_counter = wall, mono


async def _get_metrics(store: Any) -> bytes:
    """``GET /metrics`` through the app's ASGI interface: the bytes a scraper would read."""
    import httpx

    import wsmon.web.app as app
    from wsmon.config.file import Config
    from wsmon.config.live import LiveConfig

    class Monitor:  # what /metrics reads of the Monitor
        started = True

        def __init__(self) -> None:
            self.store = store

    app.perf_counter = lambda: MONO  # type: ignore[attr-defined]  # the windows' cut
    app.generate_latest = lambda *_: OWN  # type: ignore[attr-defined]  # not the process's own figures
    state = app.ExporterState(live=LiveConfig(Config()), monitor=Monitor())  # type: ignore[arg-type]
    transport = httpx.ASGITransport(app=app.create_app(state))
    async with httpx.AsyncClient(transport=transport, base_url="http://wsmon") as client:
        answer = await client.get("/metrics")
    assert answer.status_code == 200
    return answer.content


def child(args: argparse.Namespace) -> dict[str, Any]:
    body = asyncio.run(_get_metrics(_build(args)))
    assert body.startswith(OWN)
    if args.keep:
        Path(args.keep).write_bytes(body)
    return {"bytes": len(body), "lines": body.count(b"\n"), "sha256": hashlib.sha256(body).hexdigest()}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--targets", type=int, default=10_000)
    parser.add_argument("--window", type=float, default=300.0)
    parser.add_argument("--labels", action="store_true", help="two labels of their own per target")
    parser.add_argument("--series", choices=("full", "lean"), default="full")
    parser.add_argument("--compare", type=Path, action="append", default=[], help="root of another copy of wsmon")
    parser.add_argument("--keep", help=argparse.SUPPRESS)  # child: where to write the body
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args)))
        return 0
    argv = [sys.executable, __file__, "--child", "--targets", str(args.targets), "--window", str(args.window)]
    argv += ["--labels"] * args.labels + ["--series", args.series]
    results = {}
    for copy in [ROOT, *(path.resolve() for path in args.compare)]:
        env = {**os.environ, "PYTHONPATH": str(copy)}
        out = subprocess.run(argv, env=env, check=True, capture_output=True, text=True)
        results[str(copy)] = json.loads(out.stdout)
        print(f"{copy}: {results[str(copy)]}")
    same = len({r["sha256"] for r in results.values()}) == 1
    print("identical" if same else "DIFFERENT")
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
