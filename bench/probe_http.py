"""Latency that ``GET /probe`` adds to a probe: a real ``wsmon serve`` against a bare probe().

One goecho, one ``wsmon serve`` (``--web.listen-address 127.0.0.1:PORT``, no config), and this
process, which takes turns, one request or probe at a time (C=1), for N rounds:

- ``probe()``: a bare ``wsmon.probe.probe()`` in this process (uvloop), timed around the await;
- ``/probe``: ``GET /probe?target=<goecho url>`` to wsmon serve, from send to the last byte;
- ``/-/healthy``: the same client and server with no probe behind the request: the floor that
  any HTTP request pays (client, loopback, uvicorn and Starlette), measured, not guessed.

The client is a raw socket kept alive across requests (HTTP/1.1, TCP_NODELAY), with the
request bytes prepared once; the CPU it spends per request (``time.thread_time``) is reported,
an upper bound on what it adds to a measured latency. The order of the three turns rotates
every round. Reported: median and p90 of each, and the added latency of /probe, its median
less the bare probe's median. The table goes to stdout, every sample to
``bench/results/probe_http-<time>.json``. See bench/README.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import quote

import uvloop
from probe_cpu import RESULTS, ROOT, ensure_goref, free_port, goecho, wsmon_origin

from wsmon.probe.module import BUILTIN_MODULES
from wsmon.probe.prober import probe

TIMEOUT = 10.0  # seconds, per probe (the exporter's default --timeout)


class KeepAliveClient:
    """HTTP/1.1 GETs on one kept-alive connection; a response needs a Content-Length."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.sock = socket.create_connection(("127.0.0.1", port))
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def request_bytes(self, path: str) -> bytes:
        return f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{self.port}\r\n\r\n".encode()

    def get(self, request: bytes) -> tuple[int, bytes]:
        """(status, body) of one request prepared by ``request_bytes``."""
        self.sock.sendall(request)
        data = b""
        while (end := data.find(b"\r\n\r\n")) < 0:
            data += self._recv()
        head, body = data[:end], data[end + 4 :]
        lines = head.decode("latin-1").split("\r\n")
        fields = (line.partition(":") for line in lines[1:])
        length = next(int(value) for name, _, value in fields if name.lower() == "content-length")
        while len(body) < length:
            body += self._recv()
        return int(lines[0].split(" ", 2)[1]), body

    def _recv(self) -> bytes:
        chunk = self.sock.recv(65536)
        if not chunk:
            raise RuntimeError("wsmon serve closed the connection")
        return chunk

    def close(self) -> None:
        self.sock.close()


def wsmon_command() -> list[str]:
    """The ``wsmon`` script of this interpreter's environment (``python -m wsmon`` without one)."""
    script = Path(sys.executable).parent / "wsmon"
    return [str(script)] if script.exists() else [sys.executable, "-m", "wsmon"]


@contextmanager
def wsmon_serve() -> Iterator[int]:
    """A ``wsmon serve`` on a free loopback port for as long as the block runs; yields the port."""
    port = free_port()
    command = [*wsmon_command(), "serve", "--web.listen-address", f"127.0.0.1:{port}"]
    # Its log goes to a file, not a pipe: a pipe nobody reads would block the server once full.
    with tempfile.TemporaryFile() as log:
        proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=log)
        try:
            deadline = time.monotonic() + 30
            while True:
                try:
                    client = KeepAliveClient(port)
                    client.get(client.request_bytes("/-/healthy"))
                    client.close()
                    break
                except (OSError, RuntimeError, StopIteration):
                    if proc.poll() is not None or time.monotonic() > deadline:
                        log.seek(0)
                        tail = log.read().decode(errors="replace")[-2000:]
                        raise RuntimeError(f"wsmon serve did not answer on port {port}\n{tail}") from None
                    time.sleep(0.1)
            yield port
        finally:
            proc.terminate()
            proc.wait()


def quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def measure(url: str, port: int, rounds: int, warmup: int) -> dict[str, object]:
    module = BUILTIN_MODULES["ping"]
    client = KeepAliveClient(port)
    probe_request = client.request_bytes(f"/probe?target={quote(url, safe='')}")
    healthy_request = client.request_bytes("/-/healthy")
    samples: dict[str, list[float]] = {"probe()": [], "/probe": [], "/-/healthy": []}
    client_cpu: dict[str, list[float]] = {"/probe": [], "/-/healthy": []}
    failures = 0

    async def bare() -> float:
        nonlocal failures
        began = time.perf_counter()
        result = await probe(url, module, TIMEOUT)
        elapsed = time.perf_counter() - began
        failures += not result.success
        return elapsed

    def http(name: str, request: bytes) -> Callable[[], Awaitable[float]]:
        async def run() -> float:  # blocks the loop while it waits: nothing else runs meanwhile
            nonlocal failures
            cpu, began = time.thread_time(), time.perf_counter()
            status, body = client.get(request)
            elapsed = time.perf_counter() - began
            client_cpu[name].append(time.thread_time() - cpu)
            failures += status != 200 or (name == "/probe" and b"\nprobe_success 1" not in body)
            return elapsed

        return run

    turns = [
        ("probe()", bare),
        ("/probe", http("/probe", probe_request)),
        ("/-/healthy", http("/-/healthy", healthy_request)),
    ]
    try:
        for i in range(warmup + rounds):
            for name, call in turns[i % 3 :] + turns[: i % 3]:
                elapsed = await call()
                if i >= warmup:
                    samples[name].append(elapsed)
    finally:
        client.close()
    return {"samples": samples, "client_cpu": client_cpu, "failures": failures}


def summarize(measured: dict[str, object]) -> dict[str, object]:
    samples: dict[str, list[float]] = measured["samples"]  # type: ignore[assignment]
    client_cpu: dict[str, list[float]] = measured["client_cpu"]  # type: ignore[assignment]
    rows = {
        name: {"median_ms": statistics.median(v) * 1e3, "p90_ms": quantile(v, 0.9) * 1e3, "n": len(v)}
        for name, v in samples.items()
    }
    bare, endpoint, healthy = (rows[k]["median_ms"] for k in ("probe()", "/probe", "/-/healthy"))
    return {
        "rows": rows,
        "added_median_ms": endpoint - bare,
        "added_p90_ms": rows["/probe"]["p90_ms"] - rows["probe()"]["p90_ms"],
        "http_floor_median_ms": healthy,
        "client_cpu_median_us": {k: statistics.median(v) * 1e6 for k, v in client_cpu.items()},
        "failures": measured["failures"],
    }


def print_table(summary: dict[str, object]) -> None:
    rows: dict[str, dict[str, float]] = summary["rows"]  # type: ignore[assignment]
    print(f"{'':12} {'median':>9} {'p90':>9}")
    for name, row in rows.items():
        print(f"{name:12} {row['median_ms']:7.3f}ms {row['p90_ms']:7.3f}ms")
    cpu: dict[str, float] = summary["client_cpu_median_us"]  # type: ignore[assignment]
    print(
        f"/probe adds {summary['added_median_ms']:.3f} ms at the median "
        f"({summary['added_p90_ms']:.3f} ms at p90) over a bare probe(); "
        f"any request costs {summary['http_floor_median_ms']:.3f} ms (/-/healthy); "
        f"client CPU per request {cpu['/probe']:.0f} µs (/probe), {cpu['/-/healthy']:.0f} µs (/-/healthy)"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-n", type=int, default=500, help="rounds: probes and requests of each kind (default 500)")
    parser.add_argument("--warmup", type=int, default=50, help="rounds not kept (default 50)")
    args = parser.parse_args()
    ensure_goref()
    began = time.time()
    with goecho() as url, wsmon_serve() as port:
        measured = uvloop.run(measure(url, port, args.n, args.warmup))
    summary = summarize(measured)
    print_table(summary)
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"probe_http-{time.strftime('%Y%m%d-%H%M%S', time.localtime(began))}.json"
    report = {
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(began)),
        "host": {"cpus": os.cpu_count(), "machine": platform.machine(), "python": platform.python_version()},
        **wsmon_origin(),
        "rounds": args.n,
        "summary": summary,
        "samples_s": measured["samples"],
    }
    path.write_text(json.dumps(report, indent=2) + "\n")
    print(f"results: {path.relative_to(ROOT)}")
    if summary["failures"]:
        print(f"{summary['failures']} probes or requests failed: the figures are not comparable", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
