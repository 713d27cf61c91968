"""Persistent mode under load: N persistent targets in one ``wsmon serve``, pinged every second.

Most targets (``--targets`` minus ``--delayed``) are served by goecho's code, which answers
pings at once; ``--delayed`` of them by the same server holding each pong ~20 ms
(bench/multiecho.go: goecho on a range of ports, one per target, pongs delayed on demand).
Every window lasts ``--seconds`` (default 30) and every window measured is reported: none is
tried again, picked or dropped. The machine's other work during each one is measured and
printed next to it, as a fact.

The yardstick first, before wsmon starts: ``gopersist`` (Go + gorilla/websocket, built by
build-goref) holding the same number of connections, one ping a second each, to a multiecho
port that answers at once; its CPU (utime + stime from /proc/PID/stat) over a window.

Then wsmon, once every connection is up and has settled:

1. a CPU window, without the capture (its filter runs in every sender's system calls) and
   without scrapes: wsmon's CPU as cores and as a ratio to gopersist's; VmRSS of wsmon minus
   that of the same wsmon serving no targets, per target; scheduler lag
   (``wsmon_scheduler_lag_seconds`` bucket deltas between the scrapes around the window);
2. with tcpdump on lo, one window per condition: quiet (no scrapes), /metrics scraped every
   15 s and every 5 s (a thread fetching the whole body, as Prometheus would), and a CPU-bound
   neighbour process (a busy loop) running for the whole window. In each, the error of the
   round trips wsmon reports against the same pings on the wire, for every captured target
   (every delayed one, and ``--sample`` immediate ones spread through the order /metrics
   renders targets in), wherever a scrape renders it: per target, the
   ``wsmon_ping_pong_window_seconds`` quantiles p50 and p99 (the window set to ``--seconds``)
   against the same quantiles of the same pings on the wire (each ping carries wsmon's 4-byte
   sequence number: a target's ping k on the wire is its k-th pong in wsmon); per group, the
   median over targets, the worst 1 % (p99 over targets) and the worst target. Also wsmon's
   CPU, lag and RSS after each of these windows. wsmon runs under ping_trace.py, which from
   the CPU window's end writes down every ping and pong of the captured targets: each round
   trip wsmon recorded is compared with the wire's one by one, its error split into the send's
   part and the arrival's;
3. the capture and the trace stopped, a second CPU window like the first (after the scrapes
   and the conditions, as a long-running wsmon is); then wsmon stops and gopersist is measured
   again. The host's speed drifts from one minute to the next (gopersist has been seen to move
   by a quarter between runs minutes apart), so each of wsmon's CPU windows has one of
   gopersist's next to it: both pairs' ratios are printed, and the verdict judges the ratio of
   the sums (both of wsmon's windows against both of gopersist's).

``--conditions`` and ``--repeat`` choose the condition windows (e.g. six neighbour windows).

``--sched-fifo`` runs wsmon SCHED_FIFO during the windows (its own lag, not the machine's);
``--profile`` samples wsmon with py-spy during the CPU window.
The tables go to stdout, everything to ``bench/results/persistent_load-<time>.json``.
See bench/README.md.
"""

from __future__ import annotations

import argparse
import bisect
import itertools
import json
import math
import os
import platform
import random
import re
import resource
import shutil
import signal
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections import Counter, defaultdict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import ping_trace
from probe_cpu import BIN, BUILD_GOREF_CANDIDATES, RESULTS, ROOT, ensure_goref, free_port

from wsmon.continuous import series
from wsmon.continuous.wheel import TICK
from wsmon.continuous.window import quantile  # the wire's quantiles by the definition wsmon reports
from wsmon.ws import connection

BENCH = Path(__file__).resolve().parent
MULTIECHO_SRC = BENCH / "multiecho.go"
PING_TRACE = BENCH / "ping_trace.py"
MULTIECHO = BIN / "multiecho"
GOPERSIST = BIN / "gopersist"

# In the HELP of wsmon_ping_pong_window_seconds where wsmon cuts a scrape's windows at its start.
CUT_AT_START = b"cut when the scrape began"

GOALS = {
    "cpu_ratio": 0.8,  # wsmon's CPU / gopersist's, the same number of connections and pings
    "rss_kb_per_target": 4.0,  # marginal, before scrapes and after every window (each ends with one)
    "lag_p99_ms": 5.0,  # the CPU window's
    "rtt_error_ms": 0.5,  # |window quantile − wire|, at p50 and p99, for 99 % of targets, every condition
    "rtt_error_worst_ms": 1.0,  # … and for every target
}
HEADLINE = (0.5, 0.99)  # the window quantiles judged
CLK_TCK = os.sysconf("SC_CLK_TCK")
PORTS_PER_SERVER = 4000  # multiecho: a listener and a connection per port, under the fd limit
SETTLE = 5.0  # seconds between the last connection up and the first scrape (or gopersist's window)
AFTER_SCRAPE = 3.0  # seconds between the scrape that opens a window and the window: the loop catches up
QUANTILES = (0.0, 0.5, 0.9, 0.99, 1.0)  # wsmon's WINDOW_QUANTILES
NEAR = 0.002  # seconds: a pong this close to a window's cut, on the wire, is counted as near it
# wsmon renders /metrics a chunk of targets at a time, letting the loop run (and read the pongs
# that came meanwhile) in between; each target's window is read when it is rendered. This bounds
# from above when a target was rendered (see render_bounds); unknown: the scrape's end does.
RENDER_CHUNK: int | None = getattr(series, "_CHUNK", None)
NEIGHBOUR = [sys.executable, "-c", "while True: pass"]  # a CPU-bound process next to wsmon
# wsmon leaves untimed a ping whose send took longer than this (older copies time every one)
SEND_DOUBT_MS = getattr(connection, "SEND_DOUBT", math.inf) * 1e3


@dataclass(frozen=True)
class Condition:
    """What runs next to wsmon during a window measured with the capture."""

    name: str
    text: str
    scrape_every: float = 0.0  # seconds; 0: no scrapes but the two that open and close the window
    neighbour: bool = False


# --- small measurements ---------------------------------------------------------------------


def cpu_seconds(pid: int) -> tuple[float, float]:
    """(user, system) CPU seconds of a process, all its threads."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rpartition(")")[2].split()
    return int(fields[11]) / CLK_TCK, int(fields[12]) / CLK_TCK


def machine_busy() -> tuple[float, float]:
    """CPU seconds the whole machine (all cores) has spent running tasks (user, nice, system)
    and serving interrupts (irq, softirq: on loopback, much of the benchmark's own traffic)."""
    with open("/proc/stat") as f:
        user, nice, system, _, _, irq, softirq = (int(x) for x in f.readline().split()[1:8])
    return (user + nice + system) / CLK_TCK, (irq + softirq) / CLK_TCK


def runqueue_wait(pid: int) -> float:
    """Seconds the process' main thread has waited for a CPU while runnable (/proc/PID/schedstat)."""
    with open(f"/proc/{pid}/schedstat") as f:
        return int(f.read().split()[1]) / 1e9


def memory_kb(pid: int, key: str = "VmRSS") -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"no {key} for pid {pid}")


def summary_ms(values: Sequence[float]) -> dict[str, float]:
    """p50 / p99 / min / max (in ms) of values in seconds."""
    ordered = sorted(values)
    if not ordered:
        return {"n": 0}
    return {
        "n": len(ordered),
        "p50": quantile(ordered, 0.5) * 1e3,
        "p99": quantile(ordered, 0.99) * 1e3,
        "min": ordered[0] * 1e3,
        "max": ordered[-1] * 1e3,
        "mean": statistics.fmean(ordered) * 1e3,
    }


def wall_minus_monotonic() -> float:
    """time.time() − time.monotonic() (pcap timestamps are wall clock, wsmon's monotonic)."""
    best = None
    for _ in range(20):
        m0 = time.monotonic()
        w = time.time()
        m1 = time.monotonic()
        if best is None or m1 - m0 < best[0]:
            best = (m1 - m0, w - (m0 + m1) / 2)
    assert best is not None
    return best[1]


# --- processes --------------------------------------------------------------------------------


def descriptors_for(targets: int) -> int:
    """File descriptors a process of the benchmark may need: wsmon a socket per target, a
    multiecho two per port (a listener and a connection) of its PORTS_PER_SERVER."""
    return max(min(PORTS_PER_SERVER, targets) * 2, targets) + 1000


def raise_nofile(need: int) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < need:
        raise RuntimeError(f"{need} file descriptors needed, the hard limit is {hard}: raise it (ulimit -Hn)")
    if soft == resource.RLIM_INFINITY or soft < need:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))  # inherited by every child


def ensure_multiecho() -> None:
    if MULTIECHO.exists() and MULTIECHO.stat().st_mtime >= MULTIECHO_SRC.stat().st_mtime:
        return
    ensure_goref()  # installs golang-go and gorilla/websocket when missing
    print(f"building {MULTIECHO} …", file=sys.stderr)
    with tempfile.TemporaryDirectory() as gopath:
        src = Path(gopath, "src", "multiecho")
        src.mkdir(parents=True)
        shutil.copy(MULTIECHO_SRC, src / "main.go")
        env = {
            **os.environ,
            "GOPATH": f"{gopath}:/usr/share/gocode",
            "GO111MODULE": "off",
            "GOCACHE": f"{gopath}/cache",
        }
        subprocess.run(["go", "build", "-o", str(MULTIECHO), "multiecho"], cwd=gopath, env=env, check=True)


class Processes:
    """Everything the benchmark starts, stopped in reverse order whatever happens."""

    def __init__(self) -> None:
        self._procs: list[tuple[str, subprocess.Popen[bytes]]] = []

    def start(self, name: str, argv: list[str], out: Path | None = None, **kw: Any) -> subprocess.Popen[bytes]:
        sink = open(out, "wb") if out else subprocess.DEVNULL  # noqa: SIM115 - closed with the process
        try:
            proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=sink, stderr=sink, **kw)
        finally:
            if out:
                sink.close()  # type: ignore[union-attr]
        self._procs.append((name, proc))
        return proc

    def stop(self, proc: subprocess.Popen[bytes], sig: int = signal.SIGTERM, grace: float = 15.0) -> None:
        if proc.poll() is None:
            proc.send_signal(sig)
            try:
                proc.wait(grace)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()

    def stop_all(self) -> None:
        for _, proc in reversed(self._procs):
            self.stop(proc)
        self._procs.clear()


def wait_listening(port: int, proc: subprocess.Popen[bytes], what: str, limit: float = 15.0) -> None:
    deadline = time.monotonic() + limit
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"{what} did not start listening on port {port}") from None
            time.sleep(0.05)


def wsmon_argv(config: Path, port: int, trace: tuple[Path, Path] | None = None) -> list[str]:
    # `python -m wsmon` honours PYTHONPATH, so a copy of wsmon/ can be measured instead, as
    # long as it does not run in the checkout (-m puts the working directory first).
    # ``trace``: (names, out) for ping_trace.py, which runs wsmon with those targets' pings traced.
    start = ["-m", "wsmon"] if trace is None else [str(PING_TRACE), str(trace[0]), str(trace[1]), "--"]
    return [
        sys.executable,
        *start,
        "serve",
        "--config",
        str(config),
        "--web.listen-address",
        f"127.0.0.1:{port}",
        "--log.format",
        "json",
    ]


# --- scrapes ----------------------------------------------------------------------------------

_LABEL = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')
WANTED = (
    "wsmon_scheduler_lag_seconds",
    "wsmon_probes_total{",
    "wsmon_reconnects_total{",
    "wsmon_ping_pong_window_seconds{",
    "wsmon_ping_pong_window_seconds_count{",  # read with the window: its last pong's number
    "probe_websocket_ping_pong_duration_seconds{",
    "wsmon_receive_clock_loop_reads_total",
    "wsmon_untimed_pings_total",
)


@dataclass
class Scrape:
    began: float  # monotonic, when the request went out
    wall_s: float  # until the body's last byte was read
    head_s: float  # until the response's head was read: wsmon had rendered the whole body by then
    cpu_s: float  # wsmon's CPU across the scrape
    size: int
    body: bytes | None = None  # until parsed
    samples: dict[str, list[tuple[dict[str, str], float]]] = field(default_factory=dict)
    order: list[str] = field(default_factory=list)  # the targets, in the order /metrics rendered them
    # wsmon cuts every window of a scrape when the scrape began (its HELP says so): not when
    # each target's turn came.
    cut_at_start: bool = False

    def parse(self) -> Scrape:
        """Reads the wanted samples out of the body (once; the scrapes taken during a window are
        parsed after it, so that parsing them does not compete with wsmon for the cores then)."""
        if self.body is None:
            return self
        self.cut_at_start = CUT_AT_START in self.body
        seen: set[str] = set()
        for line in self.body.decode().splitlines():
            if not line.startswith(WANTED):
                continue
            head, _, value = line.rpartition(" ")
            name, _, labels = head.partition("{")
            parsed = dict(_LABEL.findall(labels))
            self.samples.setdefault(name, []).append((parsed, float(value)))
            target = parsed.get("target")
            if name == "wsmon_probes_total" and target is not None and target not in seen:
                seen.add(target)
                self.order.append(target)
        self.body = None
        return self

    def values(self, name: str, **match: str) -> dict[str, float]:
        """target → value of the samples of ``name`` whose labels include ``match``."""
        out = {}
        for labels, value in self.parse().samples.get(name, []):
            if all(labels.get(k) == v for k, v in match.items()):
                out[labels.get("target", "")] = value
        return out

    def buckets(self, name: str) -> dict[float, float]:
        return {float(lb["le"]): v for lb, v in self.parse().samples.get(name + "_bucket", [])}


def scrape(port: int, pid: int, aligned: bool = False, parse: bool = True) -> Scrape:
    """GET /metrics, the whole body; ``aligned`` sends it 20–30 ms into a decisecond of the
    monotonic clock, so that wsmon's window (kept in deciseconds) is cut at a known tick for
    the targets rendered in the scrape's first 70 ms (later ones: see render_bounds)."""
    if aligned:
        while not 0.2 <= (time.monotonic() * 10) % 1 < 0.3:
            time.sleep(0.002)
    cpu0 = sum(cpu_seconds(pid))
    began = time.monotonic()
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=300) as response:
        head = time.monotonic() - began
        body = response.read()
    wall = time.monotonic() - began
    cpu = sum(cpu_seconds(pid)) - cpu0
    result = Scrape(began=began, wall_s=wall, head_s=head, cpu_s=cpu, size=len(body), body=body)
    return result.parse() if parse else result


def scheduler_lag(first: Scrape, final: Scrape) -> dict[str, Any]:
    """``wsmon_scheduler_lag_seconds`` between two scrapes: bucket deltas and quantiles."""
    before, after = first.buckets("wsmon_scheduler_lag_seconds"), final.buckets("wsmon_scheduler_lag_seconds")
    lag = {le: after[le] - before.get(le, 0.0) for le in after}
    bounds = sorted(lag)
    count = lag[bounds[-1]]
    return {
        "buckets": {repr(k): v for k, v in lag.items()},
        "count": count,
        "p50_ms": histogram_quantile(0.5, lag) * 1e3,
        "p99_ms": histogram_quantile(0.99, lag) * 1e3,
        "over_100ms": count - next((lag[b] for b in bounds if b >= 0.1), 0.0),
        # The wheel wakes 1/TICK times a second; more observations are early wake-ups (the
        # loop's timer fired before the tick was due), which dilute the lag quantiles.
        "per_s": count / (final.began - first.began),
    }


def scrape_during(
    t0: float, seconds: float, interval: float, port: int, pid: int, stop: threading.Event, out: list[Scrape]
) -> None:
    """Scrape /metrics at t0 + k × ``interval`` (k ≥ 1) inside the window, as Prometheus would:
    the whole body is read (and parsed after the window). With the window's closing scrape at
    t0 + ``seconds``, a 30 s window gets scrapes at 15 and 30 s, or at 5, 10, …, 30 s."""
    k = 1
    while k * interval < seconds - 1e-6:
        if stop.wait(max(0.0, t0 + k * interval - time.monotonic())):
            return
        out.append(scrape(port, pid, parse=False))
        k += 1


def histogram_quantile(q: float, buckets: dict[float, float]) -> float:
    """Prometheus' histogram_quantile: linear within the bucket the rank falls in."""
    bounds = sorted(buckets)
    total = buckets[bounds[-1]]
    if total <= 0:
        return math.nan
    rank = q * total
    lower, below = 0.0, 0.0
    for bound in bounds:
        count = buckets[bound]
        if count >= rank:
            if math.isinf(bound):
                return lower
            return lower + (bound - lower) * (rank - below) / max(count - below, 1e-12)
        lower, below = bound, count
    return lower


# --- the capture ------------------------------------------------------------------------------


def read_pcap(path: Path) -> Iterator[tuple[float, bytes, int, bytes, int, int, bytes]]:
    """(time, src, sport, dst, dport, seq, payload) of each IPv4 TCP segment with a payload."""
    with open(path, "rb") as f:
        data = f.read()
    magic = data[:4]
    for endian in ("<", ">"):
        (m,) = struct.unpack(endian + "I", magic)
        if m in (0xA1B2C3D4, 0xA1B23C4D):
            break
    else:
        raise RuntimeError(f"{path}: not a pcap file")
    scale = 1e-9 if m == 0xA1B23C4D else 1e-6
    linktype = struct.unpack_from(endian + "I", data, 20)[0] & 0xFFFF
    link_len = {1: 14, 113: 16, 276: 20, 0: 4, 101: 0, 12: 0}.get(linktype)
    if link_len is None:
        raise RuntimeError(f"{path}: link type {linktype} not supported")
    record = struct.Struct(endian + "IIII")
    pos, end = 24, len(data)
    while pos + 16 <= end:
        sec, frac, incl, _ = record.unpack_from(data, pos)
        pos += 16
        packet = data[pos : pos + incl]
        pos += incl
        ip = link_len
        if len(packet) < ip + 20 or packet[ip] >> 4 != 4 or packet[ip + 9] != 6:
            continue
        ihl = (packet[ip] & 0x0F) * 4
        total = struct.unpack_from("!H", packet, ip + 2)[0]
        tcp = ip + ihl
        sport, dport, seq = struct.unpack_from("!HHI", packet, tcp)
        payload = packet[tcp + (packet[tcp + 12] >> 4) * 4 : ip + total]
        if payload:
            yield sec + frac * scale, packet[ip + 12 : ip + 16], sport, packet[ip + 16 : ip + 20], dport, seq, payload


class _Flow:
    __slots__ = ("buf", "handshake", "next_seq", "target")

    def __init__(self) -> None:
        self.buf = bytearray()
        self.handshake = True  # the HTTP upgrade comes first
        self.next_seq: int | None = None
        self.target: str | None = None


@dataclass
class Wire:
    """Round trips on the wire: target → {ping number: (ping time, round trip)}."""

    rtts: dict[str, dict[int, tuple[float, float]]]
    packets: int
    gaps: int  # segments after a hole in a stream (capture drops): parsing resynchronised


def wire_round_trips(path: Path, server_ports: set[int], port_names: dict[int, str]) -> Wire:
    """Pairs each ping with its pong, by connection and payload (the ping's number).

    A connection's target is its server port's (url-style "port") or the path of its
    upgrade request (url-style "path"); a reconnect is another connection of the same target,
    and its pings go on numbering where the last ones stopped."""
    flows: dict[tuple[bytes, int, bytes, int], _Flow] = {}
    pings: dict[str, dict[int, float]] = defaultdict(dict)
    rtts: dict[str, dict[int, tuple[float, float]]] = defaultdict(dict)
    packets = gaps = 0
    for ts, src, sport, dst, dport, seq, payload in read_pcap(path):
        packets += 1
        key = (src, sport, dst, dport)
        flow = flows.get(key)
        if flow is None:
            flow = flows[key] = _Flow()
            flow.target = port_names.get(dport if dport in server_ports else sport)
            # A capture started on open connections sees frames first, not the upgrade.
            flow.handshake = payload.startswith((b"GET ", b"HTTP/"))
        if flow.next_seq is not None and seq != flow.next_seq:
            delta = (seq - flow.next_seq) & 0xFFFFFFFF
            if delta >= 1 << 31:  # (partly) a retransmission: keep what is new
                overlap = (flow.next_seq - seq) & 0xFFFFFFFF
                payload = payload[overlap:]
                seq = flow.next_seq
                if not payload:
                    continue
            else:  # a hole: frames are written whole, so restart at this segment
                gaps += 1
                flow.buf.clear()
        flow.next_seq = (seq + len(payload)) & 0xFFFFFFFF
        buf = flow.buf
        buf += payload
        to_server = dport in server_ports
        if flow.handshake:
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                continue
            if flow.target is not None:
                pass
            elif to_server:  # "GET /<target name> HTTP/1.1"
                line = bytes(buf[: buf.find(b"\r\n")]).split()
                flow.target = line[1].decode().lstrip("/") if len(line) >= 2 else None
            else:
                client = flows.get((dst, dport, src, sport))
                flow.target = client.target if client else None
            del buf[: end + 4]
            flow.handshake = False
        pos, size = 0, len(buf)
        while size - pos >= 2:
            b0, b1 = buf[pos], buf[pos + 1]
            length, head = b1 & 0x7F, 2
            if length == 126:
                if size - pos < 4:
                    break
                length, head = struct.unpack_from("!H", buf, pos + 2)[0], 4
            elif length == 127:
                if size - pos < 10:
                    break
                length, head = struct.unpack_from("!Q", buf, pos + 2)[0], 10
            masked = b1 & 0x80
            if masked:
                head += 4
            if size - pos < head + length:
                break
            opcode = b0 & 0x0F
            if opcode in (0x9, 0xA) and length == 4 and flow.target is not None:
                body = bytes(buf[pos + head : pos + head + 4])
                if masked:
                    key4 = buf[pos + head - 4 : pos + head]
                    body = bytes(b ^ k for b, k in zip(body, key4, strict=True))
                number = int.from_bytes(body, "big")
                if opcode == 0x9 and to_server:
                    pings[flow.target][number] = ts
                elif opcode == 0xA and not to_server:
                    sent = pings[flow.target].pop(number, None)
                    if sent is not None:
                        rtts[flow.target][number] = (sent, ts - sent)
            pos += head + length
        del buf[:pos]
    return Wire(rtts=dict(rtts), packets=packets, gaps=gaps)


# --- comparing wsmon with the wire ------------------------------------------------------------


def per_ping_errors(
    scrapes: list[Scrape], wire: Wire, names: set[str], offset: float, traced: Traced | None
) -> tuple[list[float], int, int]:
    """wsmon's last round trip (ping number = its success count, or the last ping before it that
    wsmon timed, where ``traced`` says) − the wire's, per target and scrape; also how many were
    not on the capture, and how many were left out as ambiguous.

    The success count and the last round trip are rendered in different families, so at
    different moments of a scrape: where a pong of the target came during the scrape, the last
    round trip may be that pong's while the count is not, and which ping it is cannot be told.
    Those are left out (and counted), rather than paired with either candidate."""
    errors: list[float] = []
    missing = ambiguous = 0
    for s in scrapes:
        ok = s.values("wsmon_probes_total", result="success")
        last = s.values("probe_websocket_ping_pong_duration_seconds")
        began, ended = s.began - NEAR, s.began + s.wall_s + NEAR
        for name in names & last.keys():
            seen = wire.rtts.get(name, {})
            number = int(ok.get(name, -1))
            if traced is not None:
                number = traced.last_timed(name, number)
            if number not in seen:
                missing += 1
            elif any(began <= sent + rtt - offset <= ended for sent, rtt in seen.values()):
                ambiguous += 1
            else:
                errors.append(last[name] - seen[number][1])
    return errors, missing, ambiguous


def render_bounds(
    final: Scrape, wire: Wire, names: set[str], offset: float
) -> tuple[dict[str, float], dict[str, float], int]:
    """When each target of ``names`` was rendered by the scrape ``final`` (monotonic seconds):
    (earliest, latest, how many targets' bounds contradicted each other).

    wsmon reads a target's window (and its success count) when it renders it, so a long scrape
    cuts later targets' windows later. Earliest: the scrape's start, and the wire arrival of the
    last counted pong of every captured target rendered up to this one (it was read before).
    Latest: the body's last byte read (wsmon streams the body as it renders it, a family at a
    time over every target: any target may be read up to the end), or — where wsmon renders in
    chunks of targets (``series._CHUNK``, older copies) — the wire arrival (+ NEAR) of the first
    uncounted pong of any captured target of a later chunk: had it come before this chunk was
    rendered, it would have been counted there."""
    ok = final.values("wsmon_probes_total", result="success")
    order = final.parse().order

    def arrival(name: str, number: int) -> float | None:
        seen = wire.rtts.get(name, {}).get(number)
        return None if seen is None else seen[0] + seen[1] - offset

    earliest: dict[str, float] = {}
    bound = final.began
    for name in order:
        if name in names:
            at = arrival(name, int(ok.get(name, -1)))
            bound = max(bound, at if at is not None else bound)
            earliest[name] = bound
    end = final.began + (final.head_s if RENDER_CHUNK else final.wall_s)
    latest = dict.fromkeys(earliest, end)
    contradicted = 0
    if RENDER_CHUNK:
        chunk = {name: i // RENDER_CHUNK for i, name in enumerate(order) if name in names}
        first_uncounted: dict[int, float] = {}
        for name, c in chunk.items():
            at = arrival(name, int(ok.get(name, -1)) + 1)
            if at is not None:
                first_uncounted[c] = min(first_uncounted.get(c, math.inf), at)
        later = end  # the bound set by the chunks after the one at hand
        by_chunk: dict[int, float] = {}
        for c in sorted(set(chunk.values()), reverse=True):
            by_chunk[c] = later
            later = min(later, first_uncounted.get(c, math.inf) + NEAR)
        for name, c in chunk.items():
            if by_chunk[c] >= earliest[name]:
                latest[name] = by_chunk[c]
            else:  # not as modelled (a chunk size changed?): fall back on the response's head
                contradicted += 1
    return earliest, latest, contradicted


def compare_window(
    final: Scrape, wire: Wire, captured: dict[str, str], window: float, offset: float, traced: Traced | None
) -> tuple[list[dict[str, Any]], int]:
    """Every captured target (name → group): wsmon's window quantiles − the same quantiles of the
    same pings on the wire; or why it could not be compared. Also returns how many targets'
    render-time bounds contradicted each other.

    The window holds the pongs wsmon read from ``window`` seconds before the target was rendered
    (before the scrape began, where wsmon cuts every window then: ``Scrape.cut_at_start``)
    (cut at a decisecond of the monotonic clock; an arrival on the wire within NEAR of the cut is
    counted as near it) up to its success count, which is the last one's number. When the render
    time's bounds straddle a decisecond, every cut between them is tried and, quantile by
    quantile, the largest error is kept: a doubt never counts in wsmon's favour.

    Where the window is a summary (wsmon since series budgets), its ``_count`` is read with its
    quantiles: the number of the last pong in the window is then known, and the window was
    read after that pong arrived (a lower bound on the cut too). ``_count`` counts the round trips
    wsmon recorded, not the pongs: where it left pings untimed (``SEND_DOUBT``), ``traced`` tells
    which ping made the count, and the untimed pings are left out of the wire's quantiles too."""
    ok = final.values("wsmon_probes_total", result="success")
    counted = final.values("wsmon_ping_pong_window_seconds_count")
    reported = {q: final.values("wsmon_ping_pong_window_seconds", quantile=repr(q)) for q in QUANTILES}
    earliest, latest, contradicted = render_bounds(final, wire, set(captured), offset)
    span = round(window * 10)
    out: list[dict[str, Any]] = []
    for name in sorted(captured):
        entry: dict[str, Any] = {"target": name, "group": captured[name]}
        out.append(entry)
        pinned = name in counted
        last = int(counted[name]) if pinned else int(ok.get(name, -1))
        if traced is not None:
            last = traced.by_count.get(name, {}).get(last, last) if pinned else traced.last_timed(name, last)
        untimed = traced.untimed(name) if traced is not None else set()
        seen = {number: v for number, v in wire.rtts.get(name, {}).items() if number not in untimed}
        if name not in reported[0.5]:
            entry["not_compared"] = "no window quantiles in /metrics"
            continue
        if last not in seen:
            entry["not_compared"] = "its last pong is not on the capture"
            continue
        read_after, read_before = earliest[name], latest[name]
        if final.cut_at_start:  # between the request and the response's head
            read_after, read_before = final.began, final.began + final.head_s
        if pinned:
            # Its window was read after its last counted pong came (which also expired what
            # was older than that pong by the span when it was added).
            sent, rtt = seen[last]
            read_after = max(read_after, sent + rtt - offset)
            read_before = max(read_before, read_after)
        cuts = [(tick - span) / 10 for tick in range(math.floor(read_after * 10), math.floor(read_before * 10) + 1)]
        # The success count and the window are read at the same moment where wsmon renders a
        # target whole (older copies); when it renders a family at a time over every target, the
        # window is read after the count: pongs that came meanwhile (up to the latest render
        # time) may be in it too, so each possible last pong is tried as well.
        ends = [last] + (
            []
            if RENDER_CHUNK or pinned
            else sorted(n for n, (sent, rtt) in seen.items() if n > last and sent + rtt - offset <= latest[name])
        )
        pongs = sorted((sent + rtt - offset, number, rtt) for number, (sent, rtt) in seen.items() if number <= ends[-1])
        sets: dict[tuple[int, int], list[float]] = {}  # (first, last pong number) in the window → round trips
        for cut in cuts:
            for end in ends:
                numbers = [(number, rtt) for at, number, rtt in pongs if at >= cut and number <= end]
                if numbers:
                    sets.setdefault((numbers[0][0], end), sorted(rtt for _, rtt in numbers))
        if not sets:
            entry["not_compared"] = "no pong of its window on the capture"
            continue
        first = min(sets)
        holes = sum(number not in seen and number not in untimed for number in range(first[0] - 1, first[1] + 1))
        if holes:
            entry["not_compared"] = f"{holes} pongs of its window missing from the capture"
            continue
        errors = {}
        for q in QUANTILES:
            candidates = [reported[q][name] - quantile(rtts, q) for rtts in sets.values()]
            errors[repr(q)] = max(candidates, key=abs) * 1e3
        entry.update(
            {
                "pings": len(sets[first]),
                "near_cut": sum(any(abs(at - cut) < NEAR for cut in cuts) for at, _, _ in pongs),
                "cut_in_doubt": len(sets) > 1,
                "rendered_s": [earliest[name] - final.began, latest[name] - final.began],  # bounds
                "cut_s": [read_after - final.began, read_before - final.began],  # where the cut may be
                "error_ms": errors,
                "wire_ms": {repr(q): quantile(sets[first], q) * 1e3 for q in HEADLINE},
            }
        )
    return out, contradicted


def error_summary(targets: list[dict[str, Any]], q: float) -> dict[str, Any]:
    """Over targets: the median error (signed), the worst 1 % (p99 of |error|), the worst one."""
    errors = [t["error_ms"][repr(q)] for t in targets if "error_ms" in t]
    if not errors:
        return {"n": 0}
    magnitudes = sorted(abs(e) for e in errors)
    worst = max(targets, key=lambda t: abs(t["error_ms"][repr(q)]) if "error_ms" in t else -1.0)
    return {
        "n": len(errors),
        "median": quantile(sorted(errors), 0.5),
        "worst_1pct": quantile(magnitudes, 0.99),
        "worst": worst["error_ms"][repr(q)],
        "worst_target": worst["target"],
        "mean": statistics.fmean(errors),
    }


def rtt_verdict(s: dict[str, Any], not_compared: int) -> str:
    if not s.get("n") or not_compared:
        return "INCOMPLETE"
    ok = s["worst_1pct"] <= GOALS["rtt_error_ms"] and abs(s["worst"]) <= GOALS["rtt_error_worst_ms"]
    return "ok" if ok else "MISSED"


# --- the yardstick ----------------------------------------------------------------------------

GOPERSIST_SUMMARY = re.compile(r"pings (\d+); rtt p50 ([\d.]+)ms p99 ([\d.]+)ms")


def ensure_gopersist() -> None:
    """gopersist is built with goprobe and goecho by build-goref (an older bench/bin may lack it)."""
    ensure_goref()
    if GOPERSIST.exists():
        return
    override = os.environ.get("GOREF_BUILD")
    candidates = (Path(override),) if override else BUILD_GOREF_CANDIDATES
    script = next((p for p in candidates if p.exists()), None)
    if script is None:
        raise RuntimeError(f"gopersist missing from {BIN} and no build-goref found (set GOREF_BUILD)")
    print(f"building gopersist with {script} …", file=sys.stderr)
    subprocess.run([str(script), str(BIN)], check=True)
    if not GOPERSIST.exists():
        raise RuntimeError(f"{script} did not build {GOPERSIST}")


def wait_log(log: Path, text: bytes, proc: subprocess.Popen[bytes], what: str, limit: float) -> None:
    deadline = time.monotonic() + limit
    while text not in log.read_bytes():
        if proc.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"{what} did not start: {log.read_text()[-300:]}")
        time.sleep(0.05)


def measure_gopersist(
    n: int, seconds: float, procs: Processes, tmp: Path, connect_limit: float, idle: dict[str, Any]
) -> dict[str, Any]:
    """gopersist holding ``n`` connections to one multiecho port that answers pings at once, each
    pinged once a second (spread over the second), like wsmon's targets; its CPU over a window of
    ``seconds`` once they are all up and SETTLE has passed. ``idle``: the other processes
    started (wsmon's servers, idle now), whose CPU is not counted as other work."""
    port = free_port()
    server_log, log = tmp / "multiecho-gopersist.log", tmp / "gopersist.log"
    server = procs.start("multiecho-gopersist", [str(MULTIECHO), "-ports", str(port)], out=server_log)
    wait_log(server_log, b"listening on", server, "multiecho for gopersist", 30)
    duration = SETTLE + seconds + 3  # it stops on its own, a little after the window
    argv = [str(GOPERSIST), "-url", f"ws://127.0.0.1:{port}/", "-n", str(n), "-interval", "1s"]
    began = time.monotonic()
    go = procs.start("gopersist", [*argv, "-duration", f"{duration:g}s"], out=log)
    deadline = began + connect_limit
    while b"connected " not in log.read_bytes():
        if go.poll() is not None or b"dial:" in log.read_bytes() or time.monotonic() > deadline:
            raise RuntimeError(f"gopersist did not connect {n} connections: {log.read_text()[-300:]}")
        time.sleep(0.1)
    connect_s = time.monotonic() - began
    print(
        f"gopersist: {n} connected in {connect_s:.1f}s; settling {SETTLE:g}s, window of {seconds:g}s …", file=sys.stderr
    )
    time.sleep(SETTLE)
    others = {"multiecho (gopersist's)": server, **idle}
    me = os.getpid()
    other0 = {k: sum(cpu_seconds(p.pid)) for k, p in others.items()}
    mine0, busy0 = sum(cpu_seconds(me)), machine_busy()
    go0, t0 = cpu_seconds(go.pid), time.monotonic()
    rss: list[int] = []
    while time.monotonic() < t0 + seconds:
        rss.append(memory_kb(go.pid))
        time.sleep(min(1.0, max(0.0, t0 + seconds - time.monotonic())))
    go1, t1 = cpu_seconds(go.pid), time.monotonic()
    mine1, busy1 = sum(cpu_seconds(me)), machine_busy()
    other1 = {k: sum(cpu_seconds(p.pid)) for k, p in others.items()}
    loadavg = Path("/proc/loadavg").read_text().split()[:3]
    try:
        go.wait(60)
    except subprocess.TimeoutExpired:
        procs.stop(go)
    procs.stop(server)
    elapsed = t1 - t0
    user, system = go1[0] - go0[0], go1[1] - go0[1]
    helpers = {
        "multiecho (gopersist's)": (other1["multiecho (gopersist's)"] - other0["multiecho (gopersist's)"]) / elapsed,
        "wsmon's servers (idle)": sum(other1[k] - other0[k] for k in idle) / elapsed,
        "this script": (mine1 - mine0) / elapsed,
    }
    output = log.read_text()
    summary = GOPERSIST_SUMMARY.search(output)
    return {
        "connections": n,
        "connect_s": connect_s,
        "seconds": elapsed,
        "argv": [*argv, "-duration", f"{duration:g}s"],
        "cores": (user + system) / elapsed,
        "user_cores": user / elapsed,
        "sys_cores": system / elapsed,
        "cpu_us_per_ping": (user + system) / (n * elapsed) * 1e6,
        "rss_kb": max(rss),
        "helpers_cores": helpers,
        "machine_task_cores": (busy1[0] - busy0[0]) / elapsed,
        "machine_irq_cores": (busy1[1] - busy0[1]) / elapsed,
        "others_cores": max(0.0, (busy1[0] - busy0[0]) / elapsed - (user + system) / elapsed - sum(helpers.values())),
        "loadavg": loadavg,
        "pings": int(summary[1]) if summary else None,
        "rtt_p50_ms": float(summary[2]) if summary else None,
        "rtt_p99_ms": float(summary[3]) if summary else None,
        "output": output.strip().splitlines()[-3:],
    }


# --- the run ------------------------------------------------------------------------------------


@dataclass
class Plan:
    """The targets (name, URL, group, captured?) and the servers (name, argv, group)."""

    targets: list[tuple[str, str, str, bool]]
    servers: list[tuple[str, list[str], str]]
    capture_filter: str  # tcpdump's: the captured targets' server ports
    server_ports: set[int]  # tells the direction of a captured segment
    port_names: dict[int, str]  # server port → target, when each target has a port of its own


def plan_ports(n: int, delayed: int, sample: int, delay_ms: float) -> Plan:
    """url-style "port": target i is ws://127.0.0.1:(base + i)/, no path, no secret for wsmon
    to register; multiecho serves the ports, a process per PORTS_PER_SERVER. The base is
    picked at random below the ephemeral range (so wsmon's own sockets never take one)."""
    base = random.randrange(2000, 32768 - n)
    immediate = n - delayed
    names = [f"imm-{i:05d}" for i in range(immediate)] + [f"dly-{i:05d}" for i in range(delayed)]
    port_names = {base + i: name for i, name in enumerate(names)}
    sample = min(sample, immediate)
    servers = []
    for group, first, last, delay in (
        ("immediate", base, base + immediate - 1, 0.0),
        ("delayed", base + immediate, base + n - 1, delay_ms),
    ):
        # The captured sample gets servers of its own, so that their CPU can be told apart too.
        cuts = [first, *([first + sample] if group == "immediate" and 0 < sample < immediate else []), last + 1]
        for lo, hi in itertools.pairwise(cuts):
            for start in range(lo, hi, PORTS_PER_SERVER):
                stop = min(hi, start + PORTS_PER_SERVER) - 1
                argv = [str(MULTIECHO), "-ports", f"{start}-{stop}", "-pong-delay", f"{delay}ms"]
                servers.append((f"multiecho-{group}-{start}", argv, group))
    captured = [(base, base + sample - 1)] if sample else []
    if delayed:
        captured.append((base + immediate, base + n - 1))
    targets = [(name, f"ws://127.0.0.1:{port}/", name[:3], False) for port, name in port_names.items()]
    in_capture = {name for lo, hi in captured for name in (port_names[p] for p in range(lo, hi + 1))}
    targets = [(name, url, "immediate" if g == "imm" else "delayed", name in in_capture) for name, url, g, _ in targets]
    return Plan(
        targets=interleave(targets),
        servers=servers,
        capture_filter=" or ".join(f"portrange {lo}-{hi}" for lo, hi in captured),
        server_ports=set(port_names),
        port_names=port_names,
    )


def plan_paths(n: int, delayed: int, sample: int, delay_ms: float) -> Plan:
    """url-style "path": target i is ws://127.0.0.1:PORT/<name>, all on a few server ports
    (goecho, a second goecho for the captured sample, multiecho for the delayed ones). wsmon
    registers each URL path as a secret to scrub from its logs, as it must for real tokens."""
    ports = {"captured": free_port(), "immediate": free_port(), "delayed": free_port()}
    immediate = n - delayed
    sample = min(sample, immediate)
    targets = [
        (f"imm-{i:05d}", ports["captured" if i < sample else "immediate"], "immediate") for i in range(immediate)
    ]
    targets += [(f"dly-{i:05d}", ports["delayed"], "delayed") for i in range(delayed)]
    servers = [
        ("goecho-captured", [str(BIN / "goecho"), "-addr", f"127.0.0.1:{ports['captured']}"], "immediate"),
        ("goecho", [str(BIN / "goecho"), "-addr", f"127.0.0.1:{ports['immediate']}"], "immediate"),
        (
            "multiecho-delayed",
            [str(MULTIECHO), "-ports", str(ports["delayed"]), "-pong-delay", f"{delay_ms}ms"],
            "delayed",
        ),
    ]
    captured = [ports["delayed"]] + ([ports["captured"]] if sample else [])
    return Plan(
        targets=interleave(
            [(name, f"ws://127.0.0.1:{port}/{name}", group, port in captured) for name, port, group in targets]
        ),
        servers=servers,
        capture_filter=" or ".join(f"port {p}" for p in captured),
        server_ports=set(ports.values()),
        port_names={},
    )


def interleave(targets: list[tuple[str, str, str, bool]]) -> list[tuple[str, str, str, bool]]:
    """The config's order, which is the order /metrics renders the targets in: the captured
    immediate targets, the other immediate ones and the delayed ones each spread evenly through
    it, so that the targets compared with the wire sit at every position of a scrape's rendering
    (first, last and between), and so that both groups come up, and land on the ping wheel, mixed."""
    parts: dict[tuple[str, bool], list[tuple[str, str, str, bool]]] = defaultdict(list)
    for target in targets:
        parts[target[2], target[3]].append(target)
    keyed = [
        ((k + 0.5) / len(part), rank, target)
        for rank, part in enumerate(parts.values())
        for k, target in enumerate(part)
    ]
    keyed.sort(key=lambda x: (x[0], x[1]))
    return [target for _, _, target in keyed]


def write_config(path: Path, targets: list[tuple[str, str, str, bool]], window: float, timeout: float) -> None:
    lines = ["[settings]", 'ping_interval = "1s"', f'window = "{window:g}s"', f'timeout = "{timeout:g}s"', ""]
    for name, url, _, _ in targets:
        lines += ["[[targets]]", f'name = "{name}"', f'url = "{url}"', 'mode = "persistent"', ""]
    path.write_text("\n".join(lines))


class LogWatch:
    """Follows wsmon's JSON log, counting connection state changes.

    Counted, not tracked by target: wsmon scrubs every part of a target's URL path from its
    logs, and the benchmark's paths are the target names."""

    def __init__(self, path: Path) -> None:
        self.path, self._pos = path, 0
        self.events: Counter[str] = Counter()
        self.transitions: Counter[tuple[str, str]] = Counter()

    def poll(self) -> None:
        with open(self.path, "rb") as f:
            f.seek(self._pos)
            chunk = f.read()
        cut = chunk.rfind(b"\n") + 1
        self._pos += cut
        for line in chunk[:cut].splitlines():
            try:
                event = json.loads(line)
            except ValueError:
                continue
            self.events[str(event.get("event"))] += 1
            if event.get("event") == "connection state":
                self.transitions[event.get("from"), event.get("to")] += 1

    def connected(self) -> int:
        arrived = sum(v for (_, to), v in self.transitions.items() if to == "connected")
        return arrived - sum(v for (was, _), v in self.transitions.items() if was == "connected")


def baseline_rss(tmp: Path) -> dict[str, int]:
    """RSS of the same wsmon with no targets: what per-target figures are net of."""
    config = tmp / "empty.toml"
    config.write_text('[settings]\nping_interval = "1s"\n')
    procs = Processes()
    port = free_port()
    try:
        proc = procs.start("wsmon-empty", wsmon_argv(config, port), out=tmp / "wsmon-empty.log", cwd=tmp)
        wait_listening(port, proc, "wsmon (no targets)", limit=30)
        time.sleep(2)
        before = memory_kb(proc.pid)
        scrape(port, proc.pid)
        time.sleep(1)
        return {"rss_kb": before, "rss_kb_after_scrape": memory_kb(proc.pid)}
    finally:
        procs.stop_all()


def start_tcpdump(procs: Processes, plan: Plan, pcap: Path, tmp: Path) -> subprocess.Popen[bytes]:
    # Segments with a payload only (no bare ACKs); nanosecond wall-clock timestamps.
    has_payload = "((ip[2:2] - ((ip[0] & 0xf) << 2)) - ((tcp[12] & 0xf0) >> 2)) > 0"
    flt = f"tcp and ({plan.capture_filter}) and {has_payload}"
    argv = ["tcpdump", "-i", "lo", "-n", "-s", "1024", "-B", "65536", "--time-stamp-precision", "nano"]
    tcpdump = procs.start("tcpdump", [*argv, "-w", str(pcap), flt], out=tmp / "tcpdump.log")
    deadline = time.monotonic() + 10
    while b"listening on" not in (tmp / "tcpdump.log").read_bytes():
        if tcpdump.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError("tcpdump did not start: " + (tmp / "tcpdump.log").read_text()[-500:])
        time.sleep(0.05)
    return tcpdump


def start_servers(args: argparse.Namespace, procs: Processes, tmp: Path) -> tuple[Plan, dict[str, Any]]:
    """The echo servers of a plan; with one port per target, another range if one is taken."""
    make = plan_ports if args.url_style == "port" else plan_paths
    for _ in range(5):
        plan = make(args.targets, args.delayed, args.sample if not args.no_capture else 0, args.pong_delay_ms)
        started = {}
        for name, argv, _ in plan.servers:
            started[name] = procs.start(name, argv, out=tmp / f"{name}.log")
        clash = False
        for name, argv, _ in plan.servers:
            proc, log = started[name], tmp / f"{name}.log"
            if argv[0].endswith("goecho"):
                wait_listening(int(argv[-1].rpartition(":")[2]), proc, name)
                continue
            deadline = time.monotonic() + 30
            while b"listening on" not in log.read_bytes():
                if proc.poll() is not None or time.monotonic() > deadline:
                    if b"address already in use" in log.read_bytes():
                        clash = True
                        break
                    raise RuntimeError(f"{name} did not start: {log.read_text()[-300:]}")
                time.sleep(0.05)
            if clash:
                break
        if not clash:
            return plan, started
        procs.stop_all()
    raise RuntimeError("no free range of server ports found in 5 tries")


CONDITION_KINDS = ("quiet", "scrape", "neighbour")


def conditions_of(args: argparse.Namespace) -> list[Condition]:
    """The windows to measure, in order: each kind asked for, each ``--repeat`` times."""
    quiet = Condition("quiet", "no scrapes but the two around the window")
    scraped = [
        Condition(f"scrape-{s:g}s", f"/metrics scraped every {s:g} s", scrape_every=s) for s in args.scrape_intervals
    ]
    neighbour = Condition("neighbour", "a CPU-bound neighbour process (busy loop) all along", neighbour=True)
    kinds = {"quiet": [quiet], "scrape": scraped, "neighbour": [neighbour]}
    chosen = [c for kind in args.conditions for c in kinds[kind]]
    if args.repeat == 1:
        return chosen
    return [
        Condition(f"{c.name}-{i}", c.text, c.scrape_every, c.neighbour)
        for c in chosen
        for i in range(1, args.repeat + 1)
    ]


def run(args: argparse.Namespace) -> dict[str, Any]:
    n, seconds = args.targets, args.seconds
    raise_nofile(descriptors_for(n))
    ensure_goref()
    ensure_multiecho()
    ensure_gopersist()
    capture = not args.no_capture
    if capture and shutil.which("tcpdump") is None:
        raise RuntimeError("tcpdump not found: apt-get install -y tcpdump (or run with --no-capture)")
    if args.profile and not Path(py_spy_argv(0, 1, "-")[0]).exists():
        raise RuntimeError("--profile needs py-spy in the venv: make setup installs it")
    conditions = conditions_of(args)
    tmp = Path(tempfile.mkdtemp(prefix="wsmon-persistent-", dir="/tmp"))
    print(f"work files in {tmp}", file=sys.stderr)
    base = baseline_rss(tmp)
    window = float(seconds)
    config = tmp / "targets.toml"
    report: dict[str, Any] = {"baseline": base, "url_style": args.url_style}
    procs = Processes()
    pcap = tmp / "lo.pcap"
    measured: list[tuple[Condition, Window]] = []
    try:
        plan, servers = start_servers(args, procs, tmp)
        helpers = dict(servers)
        # The yardstick, while wsmon is not running yet (the servers above are idle).
        report["gopersist"] = measure_gopersist(n, seconds, procs, tmp, args.connect_limit, helpers)
        write_config(config, plan.targets, window, args.timeout)
        tcpdump = None
        # Round trips need the capture; CPU is better measured without it (tcpdump's filter
        # runs in the sender's system calls: +0.025 core for wsmon at 10,000 targets). With a
        # server port per target, the capture starts after the CPU window, for the condition
        # windows; with paths, it must see the upgrade requests, so it runs from the start.
        capture_early = capture and not plan.port_names
        report["cpu_window_captured"] = capture_early
        if capture_early:
            tcpdump = start_tcpdump(procs, plan, pcap, tmp)
            helpers["tcpdump"] = tcpdump
        web = free_port()
        log_path = tmp / "wsmon.log"
        traced = [name for name, _, _, is_captured in plan.targets if is_captured] if capture else []
        trace = (tmp / "traced.txt", tmp / "pings.trace") if traced else None
        if trace is not None:
            trace[0].write_text("\n".join(traced) + "\n")
        started = time.monotonic()
        wsmon = procs.start("wsmon", wsmon_argv(config, web, trace), out=log_path, cwd=tmp)
        wait_listening(web, wsmon, "wsmon", limit=60)
        watch = LogWatch(log_path)
        deadline = time.monotonic() + args.connect_limit
        while True:
            watch.poll()
            up = watch.connected()
            if up == n:
                break
            if wsmon.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"{up} of {n} targets connected after {args.connect_limit:g}s; see {log_path}")
            time.sleep(0.2)
        report["connect_all_s"] = time.monotonic() - started
        print(f"{n} connected in {report['connect_all_s']:.1f}s; settling {SETTLE:g}s", file=sys.stderr)
        time.sleep(SETTLE)
        report["rss_kb_before_scrapes"] = memory_kb(wsmon.pid)
        if args.sched_fifo:
            # wsmon's thread runs as soon as it is runnable, whatever else the machine does, so
            # that its own lag shows, not the machine's; for the windows only (not the start).
            os.sched_setscheduler(wsmon.pid, os.SCHED_FIFO, os.sched_param(10))
        first = scrape(web, wsmon.pid, aligned=True)
        print(f"scrape: {first.wall_s:.2f}s, {first.size / 1e6:.1f} MB; CPU window of {seconds}s …", file=sys.stderr)
        time.sleep(AFTER_SCRAPE)
        spy = None
        if args.profile:
            report["profile"] = str(RESULTS / f"persistent_load-{time.strftime('%Y%m%d-%H%M%S')}.pyspy.txt")
            RESULTS.mkdir(parents=True, exist_ok=True)
            spy = procs.start("py-spy", py_spy_argv(wsmon.pid, seconds, report["profile"]), out=tmp / "py-spy.log")
        cpu_window = measure_window(seconds, wsmon.pid, helpers, web, first)
        time.sleep(1.0)
        cpu_window.rss_after = memory_kb(wsmon.pid)
        if spy is not None:
            spy.wait(60)
        first = cpu_window.final
        if trace is not None:  # ping_trace.py starts writing (after the CPU window: not in its CPU)
            os.kill(wsmon.pid, signal.SIGUSR2)
            report["trace_kb"] = wait_footprint(trace[1], wsmon) / 1024
        if capture and tcpdump is None:
            tcpdump = start_tcpdump(procs, plan, pcap, tmp)
            helpers["tcpdump"] = tcpdump
            time.sleep(1.5)  # a ping interval and more: every target's last ping is on it
            first = scrape(web, wsmon.pid, aligned=True)  # its last pings are on the capture
        # One window per condition, each reported whatever the machine did meanwhile; each
        # window's closing scrape opens the next one.
        for condition in conditions:
            print(f"window of {seconds}s, {condition.text} …", file=sys.stderr)
            neighbour = None
            if condition.neighbour:  # from before the window to after its closing scrape
                neighbour = procs.start("neighbour", NEIGHBOUR)
                helpers["neighbour"] = neighbour
            time.sleep(AFTER_SCRAPE)
            w = measure_window(seconds, wsmon.pid, helpers, web, first, condition.scrape_every)
            if neighbour is not None:
                procs.stop(neighbour, signal.SIGKILL)
                del helpers["neighbour"]
            for taken in w.during:
                taken.parse()
            time.sleep(1.0)
            w.rss_after = memory_kb(wsmon.pid)
            measured.append((condition, w))
            first = w.final
        if tcpdump is not None:
            time.sleep(0.5)
            procs.stop(tcpdump, signal.SIGINT)
            del helpers["tcpdump"]
        if trace is not None:
            os.kill(wsmon.pid, signal.SIGUSR2)  # the trace stops: wsmon runs as it is again
        # The second CPU window, as the first but after the scrapes and the conditions, and right
        # before the yardstick's second window: the host's speed drifts from minute to minute,
        # and each of wsmon's windows has one of gopersist's a minute or so from it.
        print(f"CPU window of {seconds}s, after the conditions …", file=sys.stderr)
        time.sleep(AFTER_SCRAPE)
        cpu_window_after = measure_window(seconds, wsmon.pid, helpers, web, first)
        time.sleep(1.0)
        cpu_window_after.rss_after = memory_kb(wsmon.pid)
        if args.sched_fifo:
            os.sched_setscheduler(wsmon.pid, os.SCHED_OTHER, os.sched_param(0))
        hwm = memory_kb(wsmon.pid, "VmHWM")
        watch.poll()
        report["log_events"] = dict(watch.events)
        report["log_transitions"] = {f"{a}->{b}": v for (a, b), v in watch.transitions.items()}
        procs.stop(wsmon)
        report["gopersist_after"] = measure_gopersist(n, seconds, procs, tmp, args.connect_limit, servers)
    finally:
        procs.stop_all()
    report["tcpdump"] = (tmp / "tcpdump.log").read_text().strip().splitlines()[-3:] if capture else []

    # --- figures: the CPU window, then every condition's window ---
    group_of = {name: group for name, _, group in plan.servers}
    base_kb = base["rss_kb_after_scrape"]
    final = cpu_window_after.final
    failures = {
        lb.get("target"): v for lb, v in final.samples.get("wsmon_probes_total", []) if lb.get("result") == "failure"
    }
    cw = window_figures(cpu_window, n, base_kb, group_of)
    cw_after = window_figures(cpu_window_after, n, base_kb + report.get("trace_kb", 0.0), group_of)
    go, go_after = report["gopersist"], report["gopersist_after"]
    report.update(
        {
            "targets": n,
            "delayed": args.delayed,
            "sched_fifo": args.sched_fifo,
            "seconds": window,
            "cpu_window": cw,
            "cpu_window_after": cw_after,
            # the CPU window's figures under the names they have always had
            "cores": cw["cores"],
            "user_cores": cw["user_cores"],
            "sys_cores": cw["sys_cores"],
            "cpu_us_per_ping": cw["cpu_us_per_ping"],
            # Both of wsmon's CPU windows against both of gopersist's: each pair's ratio, and the
            # ratio of the sums, which the verdict judges.
            "cpu_ratio_pairs": [ratio(cw["cores"], go["cores"]), ratio(cw_after["cores"], go_after["cores"])],
            "cpu_ratio_to_gopersist": ratio(cw["cores"] + cw_after["cores"], go["cores"] + go_after["cores"]),
            "lag_p50_ms": cw["lag_p50_ms"],
            "lag_p99_ms": cw["lag_p99_ms"],
            "lag_observations_per_s": cw["lag_observations_per_s"],
            "rss_kb_hwm": hwm,
            "rss_kb_per_target_before_scrapes": (report["rss_kb_before_scrapes"] - base["rss_kb"]) / n,
            "failures": sum(failures.values()),
            "reconnects": sum(final.values("wsmon_reconnects_total").values()),
        }
    )
    wire = None
    if capture:
        began = time.monotonic()
        wire = wire_round_trips(pcap, plan.server_ports, plan.port_names)
        report["capture"] = {
            "packets": wire.packets,
            "gaps": wire.gaps,
            "bytes": pcap.stat().st_size,
            "parse_s": time.monotonic() - began,
        }
    captured = {name: group for name, _, group, is_captured in plan.targets if is_captured}
    traced_pings = Traced.read(trace[1], traced) if trace is not None else None
    report["conditions"] = []
    for condition, w in measured:
        entry: dict[str, Any] = {
            "name": condition.name,
            "text": condition.text,
            "scrape_every": condition.scrape_every,
            "neighbour": condition.neighbour,
            # the trace's own memory is not wsmon's
            **window_figures(w, n, base_kb + report.get("trace_kb", 0.0), group_of),
        }
        if wire is not None:
            entry["rtt"] = rtt_figures(w, wire, captured, window, traced_pings)
            if traced_pings is not None:
                entry["traced"] = traced_figures(w, wire, traced_pings)
        report["conditions"].append(entry)
    report["verdicts"] = verdicts(report)
    if not args.keep:
        shutil.rmtree(tmp, ignore_errors=True)
    return report


def ratio(wsmon: float, yardstick: float) -> float:
    return wsmon / yardstick if yardstick > 0 else math.inf


def verdicts(r: dict[str, Any]) -> dict[str, Any]:
    """Each goal: the value judged, the goal, ok / MISSED (or why it is not judged)."""
    out: dict[str, Any] = {}
    cpu = r["cpu_ratio_to_gopersist"]
    out["cpu_ratio"] = {"value": cpu, "goal": GOALS["cpu_ratio"], "verdict": verdict(cpu, GOALS["cpu_ratio"])}
    # Marginal RSS per target before any scrape, during the CPU windows (after one) and a second
    # after every condition's window (each closed by a scrape, after the scrapes they had).
    windows = {"CPU window": r["cpu_window"], "CPU window after": r["cpu_window_after"]}
    rss = {"before scrapes": r["rss_kb_per_target_before_scrapes"]}
    rss.update({name: w["rss_kb_per_target_max"] for name, w in windows.items()})
    for c in r["conditions"]:
        rss[f"after {c['name']}"] = c["rss_kb_per_target_after"]
    worst_rss = max(rss.values())
    goal = GOALS["rss_kb_per_target"]
    out["rss"] = {"value": worst_rss, "by_moment": rss, "goal": goal, "verdict": verdict(worst_rss, goal)}
    lag = max(w["lag_p99_ms"] for w in windows.values())
    diluted = any(w["lag_observations_per_s"] > 1.5 / TICK for w in windows.values())
    lag_verdict = "DILUTED" if diluted else verdict(lag, GOALS["lag_p99_ms"])
    out["lag"] = {"value": lag, "goal": GOALS["lag_p99_ms"], "verdict": lag_verdict}
    for c in r["conditions"]:
        groups = c.get("rtt", {}).get("groups")
        if not groups:  # no capture, or no target captured
            out[f"rtt {c['name']}"] = {"verdict": "not measured"}
            continue
        judged = [(g["error_ms"][repr(q)], g["verdict"][repr(q)]) for g in groups.values() for q in HEADLINE]
        found = [v for _, v in judged]
        worst_1pct = max((s["worst_1pct"] for s, _ in judged if s.get("n")), default=math.nan)
        worst = max((abs(s["worst"]) for s, _ in judged if s.get("n")), default=math.nan)
        overall = "MISSED" if "MISSED" in found else "INCOMPLETE" if "INCOMPLETE" in found else "ok"
        out[f"rtt {c['name']}"] = {
            "worst_1pct": worst_1pct,
            "worst": worst,
            "goal": GOALS["rtt_error_ms"],
            "goal_worst": GOALS["rtt_error_worst_ms"],
            "verdict": overall,
        }
    found = [v["verdict"] for v in out.values()]
    out["overall"] = "MISSED" if "MISSED" in found else "ok" if set(found) == {"ok"} else "NOT ALL JUDGED"
    return out


@dataclass
class Window:
    """One measured window, between two scrapes."""

    first: Scrape
    final: Scrape
    during: list[Scrape]
    t0: float
    t1: float
    wsmon_cpu: tuple[float, float]  # user, system seconds
    helper_cpu: dict[str, float]  # seconds, by process
    bench_cpu: float  # seconds: this script's (its scrapes)
    busy: tuple[float, float]  # the machine's task and interrupt seconds
    runqueue_wait: float  # seconds wsmon was runnable but not running
    rss: list[int]
    loadavg: list[str]
    offset: float  # time.time() − time.monotonic() at the window's end (pcap times are wall clock)
    rss_after: int = 0  # VmRSS a second after the closing scrape

    @property
    def elapsed(self) -> float:
        return self.t1 - self.t0

    @property
    def others(self) -> float:
        """Cores used by tasks that are not the benchmark's."""
        mine = sum(self.wsmon_cpu) + sum(self.helper_cpu.values()) + self.bench_cpu
        return max(0.0, (self.busy[0] - mine) / self.elapsed)


def measure_window(
    seconds: float,
    pid: int,
    helpers: dict[str, subprocess.Popen[bytes]],
    web: int,
    first: Scrape,
    scrape_interval: float = 0.0,
) -> Window:
    during: list[Scrape] = []
    stop = threading.Event()
    thread = None
    me = os.getpid()
    cpu0 = {k: sum(cpu_seconds(p.pid)) for k, p in helpers.items()}
    busy0, wait0, mine0 = machine_busy(), runqueue_wait(pid), sum(cpu_seconds(me))
    w0, t0 = cpu_seconds(pid), time.monotonic()
    if scrape_interval:
        thread = threading.Thread(
            target=scrape_during, args=(t0, seconds, scrape_interval, web, pid, stop, during), daemon=True
        )
        thread.start()
    rss: list[int] = []
    while time.monotonic() < t0 + seconds:
        rss.append(memory_kb(pid))
        time.sleep(min(1.0, max(0.0, t0 + seconds - time.monotonic())))
    w1, t1 = cpu_seconds(pid), time.monotonic()
    busy1, wait1, mine1 = machine_busy(), runqueue_wait(pid), sum(cpu_seconds(me))
    cpu1 = {k: sum(cpu_seconds(p.pid)) for k, p in helpers.items()}
    loadavg = Path("/proc/loadavg").read_text().split()[:3]
    stop.set()
    if thread is not None:
        thread.join()
    rss.append(memory_kb(pid))
    final = scrape(web, pid, aligned=True)
    return Window(
        first=first,
        final=final,
        during=during,
        t0=t0,
        t1=t1,
        wsmon_cpu=(w1[0] - w0[0], w1[1] - w0[1]),
        helper_cpu={k: cpu1[k] - cpu0[k] for k in cpu0},
        bench_cpu=mine1 - mine0,
        busy=(busy1[0] - busy0[0], busy1[1] - busy0[1]),
        runqueue_wait=wait1 - wait0,
        rss=rss,
        loadavg=loadavg,
        offset=wall_minus_monotonic(),
    )


def wait_footprint(out: Path, proc: subprocess.Popen[bytes], limit: float = 10.0) -> int:
    """Bytes ping_trace.py holds in wsmon, once it has started (it says so in a file)."""
    deadline = time.monotonic() + limit
    while (held := ping_trace.footprint(out)) is None:
        if proc.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"the ping trace did not start within {limit:g}s")
        time.sleep(0.05)
    return held


def window_figures(w: Window, n: int, base_kb: float, group_of: dict[str, str]) -> dict[str, Any]:
    """A window's figures for the report (RSS per target net of ``base_kb``: a no-target wsmon's,
    plus what the ping trace holds in the windows it runs in)."""
    elapsed = w.elapsed
    user, system = w.wsmon_cpu
    cores: dict[str, float] = defaultdict(float)
    for k, used in w.helper_cpu.items():
        group = group_of.get(k, k)
        cores[f"{group} servers" if group in ("immediate", "delayed") else group] += used / elapsed
    cores["this script"] = w.bench_cpu / elapsed
    scrapes = [w.first, *w.during, w.final]
    lag = scheduler_lag(w.first, w.final)
    ok0 = w.first.values("wsmon_probes_total", result="success")
    ok1 = w.final.values("wsmon_probes_total", result="success")
    return {
        "seconds": elapsed,
        "window_monotonic": [w.t0, w.t1],
        "scrapes_began_monotonic": [x.began for x in scrapes],
        "cores": (user + system) / elapsed,
        "user_cores": user / elapsed,
        "sys_cores": system / elapsed,
        "cpu_us_per_ping": (user + system) / (n * elapsed) * 1e6,  # one ping a second per target
        "pongs_between_scrapes": sum(ok1.values()) - sum(ok0.values()),
        "helpers_cores": dict(cores),
        # Other work on the machine competes for the cores: wsmon's lag and RTTs suffer from it.
        "machine_task_cores": w.busy[0] / elapsed,
        "machine_irq_cores": w.busy[1] / elapsed,
        "others_cores": w.others,
        "wsmon_runqueue_wait_s": w.runqueue_wait,
        "loadavg": w.loadavg,
        "rss_kb": {"first": w.rss[0], "last": w.rss[-1], "max": max(w.rss), "after": w.rss_after},
        "rss_kb_per_target_max": (max(w.rss) - base_kb) / n,
        "rss_kb_per_target_after": (w.rss_after - base_kb) / n,
        "lag_buckets_delta": lag["buckets"],
        "lag_ticks": lag["count"],
        "lag_p50_ms": lag["p50_ms"],
        "lag_p99_ms": lag["p99_ms"],
        "lag_over_100ms": lag["over_100ms"],
        "lag_observations_per_s": lag["per_s"],
        # Reads that came without a kernel stamp, timed when the loop got to them: a busy loop
        # counts as round trip for those.
        "loop_reads": counted_since(w.first, w.final, "wsmon_receive_clock_loop_reads_total"),
        # Pings whose send was preempted: not timed, so in no window (absent from older copies).
        "untimed_pings": counted_since(w.first, w.final, "wsmon_untimed_pings_total"),
        "scrapes": [{"wall_s": x.wall_s, "head_s": x.head_s, "wsmon_cpu_s": x.cpu_s, "bytes": x.size} for x in scrapes],
    }


def counted_since(first: Scrape, final: Scrape, counter: str) -> float:
    """How much one of wsmon's own (unlabelled) counters grew between two scrapes; 0 where a copy
    of wsmon has no such counter."""
    return final.values(counter).get("", 0.0) - first.values(counter).get("", 0.0)


def rtt_figures(
    w: Window, wire: Wire, captured: dict[str, str], window: float, traced: Traced | None
) -> dict[str, Any]:
    """A condition's round trips: every captured target compared, summed up by group."""
    targets, contradicted = compare_window(w.final, wire, captured, window, w.offset, traced)
    groups: dict[str, Any] = {}
    for group in ("immediate", "delayed"):
        mine = [t for t in targets if t["group"] == group]
        if not mine:
            continue
        compared = [t for t in mine if "error_ms" in t]
        skipped = Counter(t["not_compared"] for t in mine if "not_compared" in t)
        ping_err, unmatched, ambiguous = per_ping_errors(
            [w.first, *w.during, w.final], wire, {t["target"] for t in mine}, w.offset, traced
        )
        summaries = {repr(q): error_summary(mine, q) for q in QUANTILES}
        groups[group] = {
            "targets": len(mine),
            "compared": len(compared),
            "not_compared": dict(skipped),
            "window_pings": sum(t["pings"] for t in compared),
            "window_pings_near_cut": sum(t["near_cut"] for t in compared),
            "targets_cut_in_doubt": sum(t["cut_in_doubt"] for t in compared),
            "error_ms": summaries,
            "verdict": {repr(q): rtt_verdict(summaries[repr(q)], len(mine) - len(compared)) for q in HEADLINE},
            # the wire's own round trips: median over targets of each target's p50 / p99
            "wire_ms": {
                repr(q): quantile(sorted(t["wire_ms"][repr(q)] for t in compared), 0.5) if compared else math.nan
                for q in HEADLINE
            },
            "per_ping_error_ms": summary_ms(ping_err),
            "per_ping_unmatched": unmatched,
            "per_ping_ambiguous": ambiguous,
        }
    return {"groups": groups, "render_bounds_contradicted": contradicted, "targets": targets}


@dataclass
class Traced:
    """What ping_trace.py wrote of the captured targets' pings and pongs (from the CPU window's end)."""

    pings: dict[str, dict[int, tuple[float, ...]]]  # target → ping number → its record
    pongs: dict[str, dict[int, tuple[float, ...]]]
    timed: dict[str, list[int]]  # target → the numbers of the pings wsmon timed, in order
    by_count: dict[str, dict[int, int]]  # target → round trips recorded → the ping that made them that many

    @classmethod
    def read(cls, path: Path, names: list[str]) -> Traced:
        pings, pongs = ping_trace.read(path)
        named = {names[i]: v for i, v in pongs.items()}
        timed = {name: sorted(seq for seq, v in p.items() if v[5]) for name, p in named.items()}
        by_count = {name: {int(v[6]): seq for seq, v in p.items() if v[5]} for name, p in named.items()}
        return cls({names[i]: v for i, v in pings.items()}, named, timed, by_count)

    def untimed(self, name: str) -> set[int]:
        return {seq for seq, v in self.pongs.get(name, {}).items() if not v[5]}

    def last_timed(self, name: str, number: int) -> int:
        """The number of the last ping wsmon timed up to ping ``number`` (itself where untraced)."""
        seqs = self.timed.get(name)
        if not seqs:
            return number
        at = bisect.bisect_right(seqs, number)
        return seqs[at - 1] if at else number


def traced_figures(w: Window, wire: Wire, traced: Traced) -> dict[str, Any]:
    """Every traced pong wsmon read during the window (ping_trace.py): the round trip it
    recorded − the same ping's on the wire, and that error split in two. The send gap: the ping
    on the wire − wsmon's send time (a preemption between the clock read and the packet
    leaving); the arrival gap: the arrival wsmon used − the pong on the wire (a wrong stamp, or
    its conversion preempted). The two add up to the error; each alone also carries the error
    of the offset between the capture's clock and wsmon's (a few µs). The pongs of pings wsmon
    did not time (their send took too long: ``SEND_DOUBT``) are in ``untimed``, not in the error:
    their send gaps show what the rule left out."""
    rows: list[dict[str, Any]] = []
    untimed: list[dict[str, Any]] = []
    pairs: list[float] = []
    unmatched = 0
    began, ended = w.first.began, w.final.began
    for name, pongs in traced.pongs.items():
        on_wire, sent = wire.rtts.get(name, {}), traced.pings.get(name, {})
        for seq, (now, read_now, age, pair, sent_at, timed, _) in pongs.items():
            if not began <= now < ended or math.isnan(sent_at):
                continue
            if seq not in on_wire or seq not in sent:
                unmatched += 1
                continue
            wire_sent, wire_rtt = on_wire[seq]
            wire_sent -= w.offset
            before, _, after, buffered, _, _, _ = sent[seq]
            if not timed:
                untimed.append(
                    {
                        "target": name,
                        "seq": seq,
                        "send_gap_ms": (wire_sent - before) * 1e3,
                        "send_ms": (after - before) * 1e3,
                    }
                )
                continue
            pairs.append(pair)
            rows.append(
                {
                    "target": name,
                    "seq": seq,
                    "error_ms": (now - sent_at - wire_rtt) * 1e3,
                    "send_gap_ms": (wire_sent - sent_at) * 1e3,
                    "arrival_gap_ms": (now - wire_sent - wire_rtt) * 1e3,
                    "send_ms": (after - before) * 1e3,
                    "buffered": bool(buffered),
                    "read_late_ms": (read_now - now) * 1e3,
                    "stamped": not math.isnan(age),
                    "pair": pair,
                }
            )
    middle = statistics.median(pairs) if pairs else 0.0
    for row in rows:
        row["clock_pair_us"] = (row.pop("pair") - middle) * 1e6  # a preemption between the two reads
    worst = sorted(rows, key=lambda r: -abs(r["error_ms"]))
    return {
        "pongs": len(rows),
        "unmatched": unmatched,
        "unstamped": sum(not r["stamped"] for r in rows),
        "over_0.5ms": sum(abs(r["error_ms"]) > 0.5 for r in rows),
        "over_1ms": sum(abs(r["error_ms"]) > 1.0 for r in rows),
        # the pings left untimed: how many, and how late their packets really left
        "untimed": len(untimed),
        "untimed_send_gap_ms": summary_ms([u["send_gap_ms"] * 1e-3 for u in untimed]),
        "untimed_over_0.5ms": sum(u["send_gap_ms"] > 0.5 for u in untimed),
        **{
            k: summary_ms([r[k] * 1e-3 for r in rows]) for k in ("error_ms", "send_gap_ms", "arrival_gap_ms", "send_ms")
        },
        "worst": worst[:10],
    }


def py_spy_argv(pid: int, seconds: float, out: str) -> list[str]:
    # --nonblocking: py-spy does not stop wsmon to read its stacks (that would add lag).
    spy = str(Path(sys.executable).parent / "py-spy")
    return [
        spy,
        "record",
        "--nonblocking",
        "-r",
        "100",
        "-d",
        str(int(seconds)),
        "-f",
        "raw",
        "-o",
        out,
        "--pid",
        str(pid),
    ]


def wsmon_origin() -> dict[str, str]:
    """Which wsmon `python -m wsmon` runs outside the checkout, and the checkout's git state."""
    where = subprocess.run(
        [sys.executable, "-c", "import wsmon; print(wsmon.__file__)"], capture_output=True, text=True, cwd="/"
    ).stdout.strip()
    rev = subprocess.run(["git", "-C", str(ROOT), "describe", "--always", "--dirty"], capture_output=True, text=True)
    return {"wsmon": where, "git": rev.stdout.strip()}


# --- the report -------------------------------------------------------------------------------


def verdict(value: float, goal: float) -> str:
    return "ok" if value <= goal else "MISSED"


def machine_line(w: dict[str, Any], fifo: bool) -> str:
    """What else used the machine during a window: printed as a fact next to its figures."""
    helpers = ", ".join(f"{k} {v:.3f}" for k, v in w["helpers_cores"].items())
    return (
        f"other work {w['others_cores']:.2f} cores of {os.cpu_count()} (load {' '.join(w['loadavg'])}), interrupts "
        f"{w['machine_irq_cores']:.2f}; wsmon waited {w['wsmon_runqueue_wait_s'] * 1e3:.0f} ms for a CPU"
        f"{' (SCHED_FIFO)' if fifo else ''}; the benchmark's processes, cores: {helpers}"
    )


def lag_text(w: dict[str, Any]) -> str:
    text = f"lag p50 {w['lag_p50_ms']:.2f} p99 {w['lag_p99_ms']:.2f} ms ({w['lag_over_100ms']:.0f} over 100 ms)"
    if w["lag_observations_per_s"] > 1.5 / TICK:
        text += f" DILUTED ({w['lag_observations_per_s']:.0f} observations/s)"
    return (
        text + f"; {w.get('loop_reads', 0):.0f} reads without a kernel stamp"
        f"; {w.get('untimed_pings', 0):.0f} pings untimed (send preempted)"
    )


def scrapes_text(w: dict[str, Any]) -> str:
    return ", ".join(f"{s['wall_s']:.2f}s/{s['wsmon_cpu_s']:.2f}s CPU/{s['bytes'] / 1e6:.1f}MB" for s in w["scrapes"])


def print_yardstick(go: dict[str, Any], when: str) -> None:
    print(
        f"\nyardstick, {when}: gopersist holding {go['connections']} connections to one multiecho port "
        f"(pongs at once), a ping a second each: {go['cores']:.3f} cores ({go['user_cores']:.3f}+{go['sys_cores']:.3f}"
        f") over {go['seconds']:.1f}s, {go['cpu_us_per_ping']:.1f} µs/ping; its RTT p50 {go['rtt_p50_ms']} p99 "
        f"{go['rtt_p99_ms']} ms"
    )
    helpers = ", ".join(f"{k} {v:.3f}" for k, v in go["helpers_cores"].items())
    print(
        f"    other work {go['others_cores']:.2f} cores of {os.cpu_count()} (load {' '.join(go['loadavg'])}), "
        f"interrupts {go['machine_irq_cores']:.2f}; the benchmark's processes, cores: {helpers}"
    )


def print_cpu_window(cw: dict[str, Any], title: str, ratio: float, yardstick: str) -> None:
    print(
        f"{title}, {cw['seconds']:.1f}s: wsmon {cw['cores']:.3f} cores ({cw['user_cores']:.3f}+{cw['sys_cores']:.3f}), "
        f"{cw['cpu_us_per_ping']:.1f} µs/ping, {ratio:.2f}× the yardstick {yardstick}; {lag_text(cw)}; "
        f"RSS {cw['rss_kb']['max'] / 1024:.0f} MiB = {cw['rss_kb_per_target_max']:.2f} KB/target"
    )


def print_report(r: dict[str, Any]) -> None:
    n, fifo = r["targets"], r["sched_fifo"]
    print(
        f"{n} persistent targets ({n - r['delayed']} answering at once, {r['delayed']} with delayed pongs; "
        f"url-style {r['url_style']}), windows of {r['seconds']:g}s; all connected in {r['connect_all_s']:.1f}s; "
        f"failures {r['failures']:.0f}, reconnects {r['reconnects']:.0f}"
    )
    go, cw = r["gopersist"], r["cpu_window"]
    print_yardstick(go, "before wsmon started")
    captured = ", with the capture" if r["cpu_window_captured"] else ", no capture"
    print_cpu_window(cw, f"CPU window, no scrapes{captured}", r["cpu_ratio_pairs"][0], "before it")
    print(f"    {machine_line(cw, fifo)}")
    print(
        f"RSS: before any scrape {r['rss_kb_before_scrapes'] / 1024:.0f} MiB = "
        f"{r['rss_kb_per_target_before_scrapes']:.2f} KB/target; high-water mark {r['rss_kb_hwm'] / 1024:.0f} MiB; "
        f"no targets {r['baseline']['rss_kb_after_scrape'] / 1024:.0f} MiB"
    )
    if "trace_kb" in r:
        print(
            f"the ping trace's own memory, {r['trace_kb']:.0f} KB (its index of targets and its buffer), is taken "
            "off the RSS of the windows it runs in"
        )
    for c in r["conditions"]:
        print(
            f"\ncondition {c['name']} ({c['text']}), {c['seconds']:.1f}s: wsmon {c['cores']:.3f} cores "
            f"({c['user_cores']:.3f}+{c['sys_cores']:.3f}); {lag_text(c)}; RSS after "
            f"{c['rss_kb_per_target_after']:.2f} KB/target (peak sampled during {c['rss_kb_per_target_max']:.2f})"
        )
        print(f"    {machine_line(c, fifo)}")
        inside = len(c["scrapes"]) - 2
        print(f"    scrapes (wall/wsmon CPU/size): opening, {inside} inside the window, closing: {scrapes_text(c)}")
        rtt = c.get("rtt")
        if rtt is None:
            continue
        print(
            f"    {'RTT error, ms (window quantile − wire)':40} {'targets':>8} {'median':>8} {'worst 1%':>9} "
            f"{'worst':>8}  verdict"
        )
        for group, g in rtt["groups"].items():
            for q, label in (("0.5", "p50"), ("0.99", "p99")):
                s = g["error_ms"][q]
                if s.get("n"):
                    figures = f"{s['median']:+8.3f} {s['worst_1pct']:9.3f} {s['worst']:+8.3f}"
                else:
                    figures = f"{'-':>8} {'-':>9} {'-':>8}"
                print(f"    {group + ' at ' + label:40} {g['targets']:8d} {figures}  {g['verdict'][q]}")
        for group, g in rtt["groups"].items():
            p = g["per_ping_error_ms"]
            skipped = "; ".join(f"{v} {k}" for k, v in g["not_compared"].items())
            print(
                f"    {group}: {g['compared']} of {g['targets']} compared{' (' + skipped + ')' if skipped else ''}; "
                f"wire RTT p50 {g['wire_ms']['0.5']:.3f} p99 {g['wire_ms']['0.99']:.3f} ms (median over targets); "
                f"{g['window_pings']} pings, {g['window_pings_near_cut']} within {NEAR * 1e3:g} ms of a cut, "
                f"{g['targets_cut_in_doubt']} targets with the cut in doubt; last RTT at each scrape − wire "
                f"(n={p.get('n', 0)}, unmatched {g['per_ping_unmatched']}, "
                f"ambiguous {g.get('per_ping_ambiguous', 0)}): p50 {p.get('p50', math.nan):+.3f} "
                f"p99 {p.get('p99', math.nan):+.3f} max {p.get('max', math.nan):+.3f} ms"
            )
        t = c.get("traced")
        if t and t["pongs"]:
            e, sg, ag = t["error_ms"], t["send_gap_ms"], t["arrival_gap_ms"]
            print(
                f"    traced pongs {t['pongs']} (not on the capture {t['unmatched']}, unstamped {t['unstamped']}): "
                f"RTT − wire p50 {e['p50']:+.3f} p99 {e['p99']:+.3f} min {e['min']:+.3f} max {e['max']:+.3f} ms, "
                f"{t['over_0.5ms']} over 0.5 ms, {t['over_1ms']} over 1 ms; send gap p50 {sg['p50']:+.3f} "
                f"max {sg['max']:+.3f}; arrival gap p50 {ag['p50']:+.3f} min {ag['min']:+.3f} max {ag['max']:+.3f}"
            )
            if t["untimed"]:
                u = t["untimed_send_gap_ms"]
                print(
                    f"    left untimed (send over {SEND_DOUBT_MS:g} ms): {t['untimed']} pings, their packets left "
                    f"p50 {u['p50']:+.3f} max {u['max']:+.3f} ms after the clock read, "
                    f"{t['untimed_over_0.5ms']} of them over 0.5 ms"
                )
            for x in t["worst"][:5]:
                print(
                    f"      {x['target']} #{x['seq']}: {x['error_ms']:+.3f} = send gap {x['send_gap_ms']:+.3f} "
                    f"+ arrival gap {x['arrival_gap_ms']:+.3f} ms; send took {x['send_ms']:.3f} ms"
                    f"{' (buffered)' if x['buffered'] else ''}, read {x['read_late_ms']:.3f} ms late, "
                    f"clock pair {x['clock_pair_us']:+.1f} µs"
                )
        if rtt["render_bounds_contradicted"]:
            print(
                f"    WARNING: {rtt['render_bounds_contradicted']} targets' render times fell outside the bounds "
                "modelled: their cuts were taken between the scrape's start and its head's arrival"
            )
    cw_after = r["cpu_window_after"]
    print()
    print_cpu_window(
        cw_after, "CPU window after the conditions, no scrapes, no capture", r["cpu_ratio_pairs"][1], "after it"
    )
    print(f"    {machine_line(cw_after, fifo)}")
    print_yardstick(r["gopersist_after"], "after wsmon stopped")
    if "capture" in r:
        x = r["capture"]
        print(
            f"\ncapture: {x['packets']} segments, {x['bytes'] / 1e6:.0f} MB, {x['gaps']} gaps, parsed in "
            f"{x['parse_s']:.1f}s; tcpdump: {'; '.join(r['tcpdump'])}"
        )
    v = r["verdicts"]

    def row(label: str, measured: str, goal: str, judged: str) -> None:
        print(f"{label:52} {measured:>34} {goal:>12}  {judged}")

    print()
    row("goal", "measured", "goal", "verdict")
    go_after = r["gopersist_after"]
    cores = f"({cw['cores']:.3f}+{cw_after['cores']:.3f}) / ({go['cores']:.3f}+{go_after['cores']:.3f})"
    row(
        "persistent CPU, wsmon / gopersist (both CPU windows)",
        f"{cores} = {r['cpu_ratio_to_gopersist']:.2f}×",
        f"≤ {GOALS['cpu_ratio']:g}×",
        v["cpu_ratio"]["verdict"],
    )
    rss = v["rss"]
    at = max(rss["by_moment"], key=rss["by_moment"].get)
    row(
        "marginal RSS per target, KB (worst moment)",
        f"{rss['value']:.2f} ({at})",
        f"≤ {GOALS['rss_kb_per_target']:g}",
        rss["verdict"],
    )
    lag = f"{cw['lag_p99_ms']:.2f}, {cw_after['lag_p99_ms']:.2f}"
    row("scheduler lag p99, ms (the two CPU windows)", lag, f"≤ {GOALS['lag_p99_ms']:g}", v["lag"]["verdict"])
    for c in r["conditions"]:
        e = v[f"rtt {c['name']}"]
        measured = f"{e['worst_1pct']:.3f} / {e['worst']:.3f}" if "worst" in e else "-"
        goal = f"≤ {GOALS['rtt_error_ms']:g} / {GOALS['rtt_error_worst_ms']:g}"
        row(f"RTT error, {c['name']}: worst 1% / worst target, ms", measured, goal, e["verdict"])
    print(f"overall: {v['overall']}")


def print_profile(path: Path, top: int = 25) -> None:
    """Own and total sample counts per function from py-spy's raw (collapsed) output."""
    own: Counter[str] = Counter()
    total: Counter[str] = Counter()
    samples = 0
    for line in path.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack:
            continue
        count = int(count_text)
        frames = stack.split(";")
        samples += count
        own[frames[-1]] += count
        for frame in set(frames):
            total[frame] += count
    print(f"py-spy: {samples} samples (100/s while wsmon runs Python); own time, top {top}:")
    for frame, count in own.most_common(top):
        print(f"  {count / samples:6.1%}  {frame}")
    print("total time (callees included), top 25:")
    for frame, count in total.most_common(top):
        print(f"  {count / samples:6.1%}  {frame}")


def interrupted(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def intervals(text: str) -> list[float]:
    values = [float(x) for x in text.split(",") if x.strip()]
    if any(v <= 0 for v in values):
        raise argparse.ArgumentTypeError("scrape intervals are seconds > 0")
    return values


def kinds(text: str) -> list[str]:
    chosen = [x.strip() for x in text.split(",") if x.strip()]
    wrong = [x for x in chosen if x not in CONDITION_KINDS]
    if wrong or not chosen:
        raise argparse.ArgumentTypeError(f"conditions are some of {', '.join(CONDITION_KINDS)}")
    return chosen


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--targets", type=int, default=10_000, help="persistent targets (default 10000)")
    parser.add_argument("--delayed", type=int, help="of which served with delayed pongs (default a tenth)")
    parser.add_argument(
        "--seconds",
        type=int,
        default=30,
        help="every window's length, and wsmon's window setting (default 30: six windows in all, which keeps "
        "`make bench` under ~10 minutes at 10,000 targets)",
    )
    parser.add_argument(
        "--pong-delay-ms", type=float, default=20.0, help="the delayed targets' pong delay (default 20)"
    )
    parser.add_argument("--sample", type=int, default=1000, help="immediate targets captured (default 1000)")
    parser.add_argument(
        "--url-style",
        choices=("port", "path"),
        default="port",
        help="port: a server port per target, URLs without a path (default); path: the target's "
        "name as the URL path, a few server ports (wsmon registers each path as a secret)",
    )
    parser.add_argument("--no-capture", action="store_true", help="no tcpdump, no RTT error figures")
    parser.add_argument(
        "--scrape-intervals",
        type=intervals,
        default=[15.0, 5.0],
        metavar="S[,S…]",
        help="a window with /metrics scraped every S seconds, for each S (default 15,5)",
    )
    parser.add_argument("--profile", action="store_true", help="py-spy wsmon during the CPU window")
    parser.add_argument("--timeout", type=float, default=10.0, help="wsmon's timeout setting (default 10)")
    parser.add_argument("--connect-limit", type=float, default=180.0, help="seconds allowed to connect them all")
    parser.add_argument(
        "--sched-fifo",
        action="store_true",
        help="run wsmon's thread with SCHED_FIFO priority 10 during the windows: its own lag, not a busy machine's",
    )
    parser.add_argument(
        "--conditions",
        type=kinds,
        default=list(CONDITION_KINDS),
        metavar="KIND[,KIND…]",
        help=f"which condition windows to measure, in this order: {', '.join(CONDITION_KINDS)} (default all)",
    )
    parser.add_argument("--repeat", type=int, default=1, help="measure each condition's window N times (default 1)")
    parser.add_argument("--keep", action="store_true", help="keep the work directory (config, logs, capture)")
    args = parser.parse_args()
    if args.delayed is None:
        args.delayed = args.targets // 10
    if not 0 <= args.delayed <= args.targets or args.targets < 1:
        parser.error("need 0 ≤ --delayed ≤ --targets and --targets ≥ 1")
    if args.repeat < 1:
        parser.error("--repeat must be at least 1")
    if args.seconds < 2:
        parser.error("--seconds must be at least 2")
    began = time.time()
    # Stop cleanly (the finally clauses stop every process started) on SIGTERM, and on SIGINT
    # even when started in the background (where the shell has SIGINT ignored).
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, interrupted)
    try:
        report = run(args)
    except (RuntimeError, subprocess.CalledProcessError) as exc:
        print(f"persistent_load: {exc}", file=sys.stderr)
        return 2
    print_report(report)
    if args.profile and "profile" in report:
        print_profile(Path(report["profile"]))
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / f"persistent_load-{time.strftime('%Y%m%d-%H%M%S', time.localtime(began))}.json"
    report.update(
        {
            "started": time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(began)),
            "args": vars(args),
            "host": {"cpus": os.cpu_count(), "machine": platform.machine(), "python": platform.python_version()},
            "goals": GOALS,
            "render_chunk": RENDER_CHUNK,
            **wsmon_origin(),
        }
    )
    out.write_text(json.dumps(report, indent=2, default=str) + "\n")
    print(f"results: {out.relative_to(ROOT)}")
    return 1 if report["failures"] or report["reconnects"] else 0


if __name__ == "__main__":
    sys.exit(main())
