"""What the dashboard costs wsmon at 10,000 targets: server time of its API requests, and the
CPU of a dashboard left open in Chromium.

``api`` (default), in-process: a Store of N persistent targets (connected, full 5-minute
windows, two labels each; ``--broken`` of them disconnected with an error) behind the real
app (access control with a bearer token, routing, the handlers, JSON), called as uvicorn calls
it (ASGI), on uvloop. Server time is the app's call, from the request to the last byte of the
response (uvicorn's HTTP parsing, ~50 µs, is not in it). Each case runs ``--requests`` times;
median, 90th percentile and worst:

- a page of 50 rows as the dashboard polls it: problems first, every row's latency changed
  since the last poll (a pong each), so it is built in full; then the same with a status
  change somewhere in the fleet before each request (the order is made again);
- a search for one target, a status filter, the last page, a page by latency (made again);
- a page that has not changed, asked with ``If-None-Match``: 304;
- the summary (its fleet latency made at most once a second: "cached", or every time), and its 304;
- one target's detail.

``--chromium``: ``wsmon serve`` with N persistent targets on a loopback server in this process
(pinging every ``--ping-interval``) and one that is down, ``--settle`` seconds after its
start-up; its CPU time (``/proc``) in turns of ``--open-for`` seconds without a page and with
the dashboard open in Debian's Chromium (logged in with the form at the start of the turn),
``--rounds`` open turns between closed ones; and the first paint: from opening the dashboard
(logged in) to the fleet's total shown (``--paints`` times, a new page each).

    .venv/bin/python bench/dashboard_api.py                              # api, 10,000 targets
    .venv/bin/python bench/dashboard_api.py --chromium                   # + the browser, ~8 min
    .venv/bin/python bench/dashboard_api.py --targets 1000 --requests 50 # a quick look

On a shared machine, read medians; the worst case is mostly another process's turn.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import json
import random
import resource
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # the tests' servers and fleet, for --chromium

from render_cpu import build_store  # noqa: E402

TOKEN = "bench-dashboard-token-0123456789"
Answer = tuple[float, int, dict[str, str], bytes]


# --- in-process: server time of each request ----------------------------------------------------


def build_app(targets: int, broken: int, directory: Path) -> tuple[Any, Any]:
    from wsmon.config.file import parse_config
    from wsmon.config.live import LiveConfig
    from wsmon.continuous.monitor import Monitor
    from wsmon.metrics.exporter import ExporterMetrics
    from wsmon.probe.reasons import Reason
    from wsmon.web.app import ExporterState, create_app

    token = directory / "token"
    token.write_text(TOKEN)
    config = parse_config({"web": {"tokens": {"bench": {"token_file": str(token), "role": "admin"}}}}, "bench.toml")
    live = LiveConfig(config)
    monitor = Monitor(live, ExporterMetrics())
    monitor.store = store = build_store(targets, 300.0, labels=True)
    for i in range(broken):
        state = store.get(f"t{i * (targets // max(broken, 1)):05d}")
        assert state is not None
        state.record_failure(Reason.REFUSED, "connect failed: [Errno 111] Connection refused")
        state.record_disconnected()
    monitor.started = True  # nothing to run: the Store is filled by hand
    return create_app(ExporterState(live=live, monitor=monitor)), store


async def call(app: Any, path: str, query: str = "", etag: str | None = None) -> Answer:
    headers = [(b"host", b"wsmon.bench"), (b"authorization", f"Bearer {TOKEN}".encode())]
    if etag:
        headers.append((b"if-none-match", etag.encode()))
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": query.encode(),
        "root_path": "",
        "headers": headers,
        "client": ("127.0.0.1", 40000),
        "server": ("127.0.0.1", 9095),
    }
    status, answer_headers, body = 0, dict[str, str](), bytearray()

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]
            answer_headers.update((k.decode(), v.decode()) for k, v in message["headers"])
        else:
            body.extend(message.get("body", b""))

    began = time.perf_counter()
    await app(scope, receive, send)
    return time.perf_counter() - began, status, answer_headers, bytes(body)


async def measure(
    requests: int, before: Callable[[int], None], ask: Callable[[int], Any], expect: int = 200
) -> dict[str, Any]:
    seconds, size = [], 0
    for i in range(requests):
        before(i)
        took, status, _, body = await ask(i)
        assert status == expect, (status, body[:200])
        seconds.append(took)
        size = len(body)
    seconds.sort()
    return {
        "median_ms": statistics.median(seconds) * 1000,
        "p90_ms": seconds[int(0.9 * (len(seconds) - 1))] * 1000,
        "worst_ms": seconds[-1] * 1000,
        "bytes": size,
    }


async def api_figures(args: argparse.Namespace) -> dict[str, Any]:
    from wsmon.continuous.store import ConnectionState
    from wsmon.web import fleet as fleet_module

    with tempfile.TemporaryDirectory() as directory:
        built = time.perf_counter()
        app, store = build_app(args.targets, args.broken, Path(directory))
        gc.freeze()  # as wsmon serve does after start-up
        build_seconds = time.perf_counter() - built
    rnd = random.Random(3)
    names = [s.target.name for s in store.by_name()]
    n = args.requests
    now = time.perf_counter()
    first = json.loads((await call(app, "/api/targets"))[3])

    def pong_on_page(_: int) -> None:  # every row of the first page changed since the last poll
        for row in first["targets"]:
            state = store.get(row["name"])
            if state is not None:
                state.record_pong(rnd.lognormvariate(-7.0, 0.6), now)

    def flap(i: int) -> None:  # a target flaps: the order is made again
        pong_on_page(i)
        state = store.get(names[-1])
        assert state is not None
        if state.state is ConnectionState.CONNECTED:
            state.record_disconnected()
        else:
            state.record_connecting()
            state.record_connected(0.001)

    def nothing(_: int) -> None:
        pass

    def get(path: str, query: str = "") -> Callable[[int], Any]:
        return lambda _: call(app, path, query)

    figures: dict[str, Any] = {}
    figures["page of 50, rows changed"] = await measure(n, pong_on_page, get("/api/targets"))
    figures["page of 50, a status changed"] = await measure(n, flap, get("/api/targets"))
    figures["search for one (new query each time)"] = await measure(
        n, nothing, lambda i: call(app, "/api/targets", f"q={names[rnd.randrange(len(names))]}")
    )
    figures["status=disconnected"] = await measure(n, flap, get("/api/targets", "status=disconnected"))
    figures["last page (offset)"] = await measure(n, pong_on_page, get("/api/targets", f"offset={len(names) - 50}"))
    figures["sort=latency (made again)"] = await measure(n, flap, get("/api/targets", "sort=latency"))
    tag = (await call(app, "/api/targets"))[2]["etag"]
    figures["page unchanged: 304"] = await measure(n, nothing, lambda _: call(app, "/api/targets", etag=tag), 304)
    figures["summary (latency cached)"] = await measure(n, flap, get("/api/summary"))
    ttl, fleet_module._LATENCY_TTL = fleet_module._LATENCY_TTL, 0.0
    try:
        figures["summary (latency made again)"] = await measure(n, flap, get("/api/summary"))
    finally:
        fleet_module._LATENCY_TTL = ttl
    version = json.loads((await call(app, "/api/summary"))[3])["version"]
    tag = (await call(app, "/api/summary", f"since={version}"))[2]["etag"]
    figures["summary unchanged: 304"] = await measure(
        n, nothing, lambda _: call(app, "/api/summary", f"since={version}", tag), 304
    )
    figures["detail of one target"] = await measure(n, nothing, lambda i: call(app, f"/api/targets/{names[i]}"))
    return {"targets": args.targets, "broken": args.broken, "build_seconds": build_seconds, "requests": figures}


# --- wsmon serve and Chromium --------------------------------------------------------------------


def chromium_figures(args: argparse.Namespace) -> dict[str, Any]:
    from playwright.sync_api import expect

    from tests.browser import ThreadedServer, launch, open_page
    from tests.fleet import fleet_config, wait_until_connected
    from tests.realservers import WsmonProcess
    from tests.servers import refused_port

    login, canary_var = ("bench", "bench-password-1"), "WSMON_BENCH_TOKEN"
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    server = ThreadedServer(refused_port(), backlog=4096)
    server.start()
    result: dict[str, Any] = {"targets": args.targets, "ping_interval": args.ping_interval, "open_for": args.open_for}
    with tempfile.TemporaryDirectory() as directory:
        config = fleet_config(
            Path(directory) / "targets.toml",
            count=args.targets,
            port=server.port,
            ping_interval=args.ping_interval,
            login=login,
            canary_var=canary_var,
        )
        wsmon = WsmonProcess(Path(directory), config, env={canary_var: "bench-token-0123456789"})
        wsmon.start()
        try:
            began = time.monotonic()
            counts = wait_until_connected(wsmon, args.targets, login, 600.0)
            result["connected_after_s"] = time.monotonic() - began
            result["counts"] = counts
            time.sleep(max(0.0, args.settle - (time.monotonic() - wsmon.started_at)))  # start-up's work done

            def cpu_over(seconds: float, during: Callable[[], None] | None = None) -> float:
                began, cpu = time.monotonic(), wsmon.cpu_seconds()
                if during is not None:
                    during()
                time.sleep(max(0.0, seconds - (time.monotonic() - began)))
                return (wsmon.cpu_seconds() - cpu) / (time.monotonic() - began)

            chromium = contextlib.contextmanager(launch)()
            with chromium as browser:
                paints = []
                for _ in range(args.paints):
                    page = open_page(browser, wsmon.base, login, 30.0)  # logged in, on the dashboard
                    began = time.monotonic()
                    page.goto(f"{wsmon.base}/dashboard")
                    expect(page.locator("#sum-total")).to_have_text(f"{args.targets + 1:,}")
                    paints.append(time.monotonic() - began)
                    page.context.close()
                result["first_paint_s"] = {"median": statistics.median(paints), "worst": max(paints)}
                pages: list[Any] = []

                def open_one() -> None:
                    pages.append(open_page(browser, wsmon.base, login, 30.0))

                closed, opened = [cpu_over(args.open_for)], []
                for _ in range(args.rounds):  # closed, open, closed, open, … closed
                    opened.append(cpu_over(args.open_for, open_one))
                    pages.pop().context.close()
                    closed.append(cpu_over(args.open_for))
                result["closed_core"], result["open_core"] = closed, opened
                result["added_core"] = statistics.mean(opened) - statistics.mean(closed)
        finally:
            wsmon.stop()
            server.stop()
    return result


# --- report ------------------------------------------------------------------------------------


def report(result: dict[str, Any]) -> None:
    api = result.get("api")
    if api:
        print(f"{api['targets']:,} targets ({api['broken']} disconnected), built in {api['build_seconds']:.1f} s")
        print(f"{'request':40} {'median':>9} {'p90':>9} {'worst':>9} {'bytes':>8}")
        for name, f in api["requests"].items():
            print(f"{name:40} {f['median_ms']:7.2f}ms {f['p90_ms']:7.2f}ms {f['worst_ms']:7.2f}ms {f['bytes']:8,}")
    browser = result.get("chromium")
    if browser:
        print(
            f"wsmon serve, {browser['targets']:,} persistent targets pinged every {browser['ping_interval']}, "
            f"connected after {browser['connected_after_s']:.0f} s"
        )
        paint = browser["first_paint_s"]
        print(f"first paint (total shown): median {paint['median']:.2f} s, worst {paint['worst']:.2f} s")
        closed = ", ".join(f"{c:.4f}" for c in browser["closed_core"])
        opened = ", ".join(f"{c:.4f}" for c in browser["open_core"])
        print(
            f"wsmon CPU in turns of {browser['open_for']:g} s: without the page {closed}; with it open {opened}: "
            f"added {browser['added_core']:.4f} core"
        )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--targets", type=int, default=10_000)
    parser.add_argument("--broken", type=int, default=1, help="targets disconnected, with an error (api)")
    parser.add_argument("--requests", type=int, default=200, help="requests per case (api)")
    parser.add_argument("--chromium", action="store_true", help="also wsmon serve with the page open in Chromium")
    parser.add_argument("--no-api", dest="api", action="store_false", help="skip the in-process figures")
    parser.add_argument("--open-for", type=float, default=60.0, help="seconds of each CPU measurement (chromium)")
    parser.add_argument("--ping-interval", default="15s", help="the fleet's ping interval (chromium)")
    parser.add_argument("--paints", type=int, default=5, help="first paints measured (chromium)")
    parser.add_argument("--rounds", type=int, default=2, help="minutes with the page open, between closed ones")
    parser.add_argument("--settle", type=float, default=120.0, help="seconds after start-up before measuring")
    parser.add_argument("--json", type=Path, help="write the figures there too")
    args = parser.parse_args()
    result: dict[str, Any] = {}
    if args.api:
        import uvloop

        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            result["api"] = runner.run(api_figures(args))
    if args.chromium:
        result["chromium"] = chromium_figures(args)
    report(result)
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
