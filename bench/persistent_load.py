"""Persistent mode under load: N persistent targets in one ``wsmon serve``, pinged every second.

Most targets (``--targets`` minus ``--delayed``) are served by goecho's code, which answers
pings at once; ``--delayed`` of them by the same server holding each pong ~20 ms
(bench/multiecho.go: goecho on a range of ports, one per target, pongs delayed on demand).
Once every connection is up and has settled, two windows of ``--seconds`` are measured.

The first, without the capture (its filter runs in every sender's system calls):

- CPU: wsmon's utime + stime from /proc/PID/stat across the window, as cores;
- RSS: VmRSS of wsmon, minus that of the same wsmon serving no targets, per target;
- scheduler lag: ``wsmon_scheduler_lag_seconds`` bucket deltas between the scrapes around
  the window, p50 / p99 interpolated within the buckets;
- how busy the machine was with other work (up to ``--tries`` windows for a quiet one).

The second, with tcpdump on lo: the error of the round trips wsmon reports against the same
pings on the wire. Each ping carries wsmon's 4-byte sequence number, so a target's ping k on
the wire is its k-th pong in wsmon. Per target, the ``wsmon_ping_pong_window_seconds``
quantiles (the window set to ``--seconds``) against the same quantiles of the same pings on
the wire; per ping, ``probe_websocket_ping_pong_duration_seconds`` (the last round trip,
whose number is the target's success count) against the wire. Both for the targets wsmon
renders before its /metrics handler first yields to the loop (the config lists them first).

``--scrape-every S`` adds /metrics scrapes during the windows (as Prometheus would);
``--sched-fifo`` runs wsmon SCHED_FIFO during the windows (its own lag, not the machine's);
``--profile`` samples wsmon with py-spy during the first window (a run of its own).
The table goes to stdout, everything to ``bench/results/persistent_load-<time>.json``.
See bench/README.md.
"""

from __future__ import annotations

import argparse
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

from probe_cpu import BIN, RESULTS, ROOT, ensure_goref, free_port

from wsmon.continuous.wheel import TICK
from wsmon.continuous.window import quantile  # the wire's quantiles by the definition wsmon reports

BENCH = Path(__file__).resolve().parent
MULTIECHO_SRC = BENCH / "multiecho.go"
MULTIECHO = BIN / "multiecho"

GOALS = {"cores": 0.25, "rss_kb_per_target": 5.0, "lag_p99_ms": 5.0, "rtt_error_ms": 0.5}
CLK_TCK = os.sysconf("SC_CLK_TCK")
PORTS_PER_SERVER = 4000  # multiecho: a listener and a connection per port, under the fd limit
SETTLE = 5.0  # seconds between the last connection up and the first scrape
AFTER_SCRAPE = 3.0  # seconds between that scrape and the window: the loop catches up
QUANTILES = (0.0, 0.5, 0.9, 0.99, 1.0)  # wsmon's WINDOW_QUANTILES
# wsmon renders /metrics a chunk of targets at a time (wsmon.collector._CHUNK), letting the
# loop run in between: a pong that arrives while a chunk is rendered waits for it. Only the
# first chunk is read before any of that, at the moment the scrape arrives.
FIRST_CHUNK = 250


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


def wsmon_argv(config: Path, port: int) -> list[str]:
    # `python -m wsmon` honours PYTHONPATH, so a copy of wsmon/ can be measured instead, as
    # long as it does not run in the checkout (-m puts the working directory first).
    return [
        sys.executable,
        "-m",
        "wsmon",
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
    "probe_websocket_ping_pong_duration_seconds{",
    "wsmon_connection_state{",
)


@dataclass
class Scrape:
    began: float  # monotonic, when the request went out
    wall_s: float
    cpu_s: float  # wsmon's CPU across the scrape
    size: int
    samples: dict[str, list[tuple[dict[str, str], float]]] = field(default_factory=dict)

    def values(self, name: str, **match: str) -> dict[str, float]:
        """target → value of the samples of ``name`` whose labels include ``match``."""
        out = {}
        for labels, value in self.samples.get(name, []):
            if all(labels.get(k) == v for k, v in match.items()):
                out[labels.get("target", "")] = value
        return out

    def buckets(self, name: str) -> dict[float, float]:
        return {float(lb["le"]): v for lb, v in self.samples.get(name + "_bucket", [])}


def scrape(port: int, pid: int, aligned: bool = False) -> Scrape:
    """GET /metrics; ``aligned`` sends it 20–30 ms into a decisecond of the monotonic clock,
    so that wsmon's window (kept in deciseconds) is cut at a known tick."""
    if aligned:
        while not 0.2 <= (time.monotonic() * 10) % 1 < 0.3:
            time.sleep(0.002)
    cpu0 = sum(cpu_seconds(pid))
    began = time.monotonic()
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=300) as response:
        body = response.read()
    wall = time.monotonic() - began
    result = Scrape(began=began, wall_s=wall, cpu_s=sum(cpu_seconds(pid)) - cpu0, size=len(body))
    for line in body.decode().splitlines():
        if not line.startswith(WANTED):
            continue
        head, _, value = line.rpartition(" ")
        name, _, labels = head.partition("{")
        result.samples.setdefault(name, []).append((dict(_LABEL.findall(labels)), float(value)))
    return result


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


def scrape_every(interval: float, port: int, pid: int, stop: threading.Event, out: list[Scrape]) -> None:
    """Scrape /metrics every ``interval`` seconds until ``stop`` is set (as Prometheus would)."""
    while not stop.wait(interval):
        out.append(scrape(port, pid))


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


def per_ping_errors(scrapes: list[Scrape], wire: Wire, names: set[str]) -> tuple[list[float], int]:
    """wsmon's last round trip (ping number = its success count) − the wire's, per target and scrape."""
    errors: list[float] = []
    missing = 0
    for s in scrapes:
        ok = s.values("wsmon_probes_total", result="success")
        last = s.values("probe_websocket_ping_pong_duration_seconds")
        for name in names & last.keys():
            seen = wire.rtts.get(name, {}).get(int(ok.get(name, -1)))
            if seen is None:
                missing += 1
            else:
                errors.append(last[name] - seen[1])
    return errors, missing


def per_target_errors(
    final: Scrape, wire: Wire, names: set[str], window: float, offset: float
) -> tuple[dict[float, list[float]], list[float], int, int]:
    """wsmon's window quantiles − the same quantiles of the same pings on the wire, per target.

    The window holds the pongs of the last ``window`` seconds, cut at a decisecond of the
    monotonic clock (the scrape went out 20–30 ms into one); its last ping is the target's
    success count. Returns errors by quantile, the wire round trips pooled, the pings in the
    windows and the ones within 2 ms of the cut (which side of it they fell is a guess)."""
    cut = (math.floor(final.began * 10) - round(window * 10)) / 10  # monotonic seconds
    ok = final.values("wsmon_probes_total", result="success")
    reported = {q: final.values("wsmon_ping_pong_window_seconds", quantile=repr(q)) for q in QUANTILES}
    errors: dict[float, list[float]] = {q: [] for q in QUANTILES}
    pooled: list[float] = []
    pings = near_cut = 0
    for name in sorted(names):
        last = int(ok.get(name, -1))
        seen = wire.rtts.get(name, {})
        if name not in reported[0.5] or last not in seen:
            continue
        mine = []
        for number, (sent, rtt) in seen.items():
            if number > last:
                continue
            received = sent + rtt - offset  # on the monotonic clock
            if received >= cut:
                mine.append(rtt)
                near_cut += received - cut < 0.002
            else:
                near_cut += cut - received < 0.002
        mine.sort()
        pings += len(mine)
        pooled += mine
        for q in QUANTILES:
            errors[q].append(reported[q][name] - quantile(mine, q))
    return errors, pooled, pings, near_cut


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
    """The config's order: the captured targets first (wsmon reads the first FIRST_CHUNK
    targets of a scrape before it yields to the loop: their last round trips are not held up
    by the scrape), then the others; within each part the delayed targets spread evenly among
    the immediate ones, so that both groups come up, and land on the ping wheel, mixed."""
    order: list[tuple[str, str, str, bool]] = []
    for captured in (True, False):
        part = [t for t in targets if t[3] == captured]
        fast = [t for t in part if t[2] != "delayed"]
        slow = [t for t in part if t[2] == "delayed"]
        merged: list[tuple[str, str, str, bool]] = []
        step = len(part) / max(1, len(slow))
        taken = 0
        for target in fast:
            while taken < len(slow) and len(merged) >= step * taken:
                merged.append(slow[taken])
                taken += 1
            merged.append(target)
        order += merged + slow[taken:]
    return order


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


def wait_quiet(limit: float, cores: float = 0.3) -> float:
    """Wait (up to ``limit`` seconds) until the machine's other work uses under ``cores``
    over 3 s; returns what it used last. The cores are shared: others' work inflates lag."""
    deadline = time.monotonic() + limit
    while True:
        b0, t0 = machine_busy()[0], time.monotonic()
        time.sleep(3)
        used = (machine_busy()[0] - b0) / (time.monotonic() - t0)
        if used < cores or time.monotonic() > deadline:
            return used
        print(f"the machine is busy ({used:.2f} cores): waiting", file=sys.stderr)


def run(args: argparse.Namespace) -> dict[str, Any]:
    n, seconds = args.targets, args.seconds
    raise_nofile(min(PORTS_PER_SERVER, n) * 2 + 1000)
    ensure_goref()
    ensure_multiecho()
    capture = not args.no_capture
    if capture and shutil.which("tcpdump") is None:
        raise RuntimeError("tcpdump not found: apt-get install -y tcpdump (or run with --no-capture)")
    tmp = Path(tempfile.mkdtemp(prefix="wsmon-persistent-", dir="/tmp"))
    print(f"work files in {tmp}", file=sys.stderr)
    base = baseline_rss(tmp)
    window = float(seconds)
    config = tmp / "targets.toml"
    report: dict[str, Any] = {"baseline": base, "url_style": args.url_style}
    procs = Processes()
    pcap = tmp / "lo.pcap"
    try:
        plan, servers = start_servers(args, procs, tmp)
        helpers = dict(servers)
        write_config(config, plan.targets, window, args.timeout)
        tcpdump = None
        # Round trips need the capture; CPU is better measured without it (tcpdump's filter
        # runs in the sender's system calls: +0.025 core for wsmon at 10,000 targets). With a
        # server port per target, the capture starts after the CPU windows, for a window of
        # its own; with paths, it must see the upgrade requests, so it runs from the start.
        capture_early = capture and not plan.port_names
        if capture_early:
            tcpdump = start_tcpdump(procs, plan, pcap, tmp)
            helpers["tcpdump"] = tcpdump
        web = free_port()
        log_path = tmp / "wsmon.log"
        started = time.monotonic()
        wsmon = procs.start("wsmon", wsmon_argv(config, web), out=log_path, cwd=tmp)
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
        if args.wait_quiet:  # wsmon and the servers run along (~0.07 core per 1000 targets)
            report["busy_before_window"] = wait_quiet(args.wait_quiet, 0.2 + 0.07 * n / 1000)
        report["rss_kb_before_scrapes"] = memory_kb(wsmon.pid)
        if args.sched_fifo:
            # wsmon's thread runs as soon as it is runnable, whatever else the machine does, so
            # that its own lag shows, not the machine's; for the windows only (not the start).
            os.sched_setscheduler(wsmon.pid, os.SCHED_FIFO, os.sched_param(10))
        first = scrape(web, wsmon.pid, aligned=True)
        print(f"scrape: {first.wall_s:.2f}s, {first.size / 1e6:.1f} MB; window of {seconds}s …", file=sys.stderr)
        # Windows are measured until one has the machine to itself (others' work under
        # --max-others cores) or --tries are done; each one's final scrape opens the next,
        # and the quietest one is reported.
        windows: list[Window] = []
        spy = None
        for attempt in range(1, args.tries + 1):
            time.sleep(AFTER_SCRAPE)
            if args.profile and spy is None:
                report["profile"] = str(RESULTS / f"persistent_load-{time.strftime('%Y%m%d-%H%M%S')}.pyspy.txt")
                RESULTS.mkdir(parents=True, exist_ok=True)
                spy = procs.start("py-spy", py_spy_argv(wsmon.pid, seconds, report["profile"]), out=tmp / "py-spy.log")
            w = measure_window(seconds, wsmon.pid, helpers, web, args.scrape_every, first)
            windows.append(w)
            if w.others <= args.max_others or attempt == args.tries or args.profile:
                break
            print(f"window {attempt}: other work used {w.others:.2f} cores; measuring another", file=sys.stderr)
            first = w.final
        if spy is not None:
            spy.wait(60)
        rtt_window = None
        if capture:
            if tcpdump is None:
                tcpdump = start_tcpdump(procs, plan, pcap, tmp)
                helpers["tcpdump"] = tcpdump
                time.sleep(1.5)  # a ping interval and more: every target's last ping is on it
            rtt_first = scrape(web, wsmon.pid, aligned=True)  # its last pings are on the capture
            time.sleep(AFTER_SCRAPE)
            print(f"window of {seconds}s with the capture …", file=sys.stderr)
            rtt_window = measure_window(seconds, wsmon.pid, helpers, web, args.scrape_every, rtt_first)
        if args.sched_fifo:
            os.sched_setscheduler(wsmon.pid, os.SCHED_OTHER, os.sched_param(0))
        hwm = memory_kb(wsmon.pid, "VmHWM")
        offset = wall_minus_monotonic()
        if tcpdump is not None:
            time.sleep(0.5)
            procs.stop(tcpdump, signal.SIGINT)
        watch.poll()
        report["log_events"] = dict(watch.events)
        report["log_transitions"] = {f"{a}->{b}": v for (a, b), v in watch.transitions.items()}
    finally:
        procs.stop_all()
    report["tcpdump"] = (tmp / "tcpdump.log").read_text().strip().splitlines()[-3:] if capture else []

    # --- figures, from the quietest window ---
    w = min(windows, key=lambda w: w.others)
    first, final, elapsed = w.first, w.final, w.t1 - w.t0
    user, system = w.wsmon_cpu
    group_of = {name: group for name, _, group in plan.servers}
    cores: dict[str, float] = defaultdict(float)
    for k, used in w.helper_cpu.items():
        cores[group_of.get(k, k)] += used / elapsed
    ok0 = first.values("wsmon_probes_total", result="success")
    ok1 = final.values("wsmon_probes_total", result="success")
    failures = {
        lb.get("target"): v for lb, v in final.samples.get("wsmon_probes_total", []) if lb.get("result") == "failure"
    }
    lag = scheduler_lag(first, final)
    scrapes = [first, *w.during, final]
    report.update(
        {
            "targets": n,
            "delayed": args.delayed,
            "sched_fifo": args.sched_fifo,
            "seconds": elapsed,
            "windows": [{"others_cores": x.others, "wsmon_cores": sum(x.wsmon_cpu) / (x.t1 - x.t0)} for x in windows],
            "window_chosen": windows.index(w) + 1,
            "window_monotonic": [w.t0, w.t1],
            "scrapes_began_monotonic": [x.began for x in scrapes],
            "cores": (user + system) / elapsed,
            "user_cores": user / elapsed,
            "sys_cores": system / elapsed,
            "cpu_us_per_ping": (user + system) / (n * elapsed) * 1e6,  # one ping a second per target
            "pongs_between_scrapes": sum(ok1.values()) - sum(ok0.values()),
            "failures": sum(failures.values()),
            "reconnects": sum(final.values("wsmon_reconnects_total").values()),
            "helpers_cores": {f"{k} servers" if k in ("immediate", "delayed") else k: v for k, v in cores.items()},
            # Other work on the machine competes for the cores: wsmon's lag and RTTs suffer from it.
            "machine_task_cores": w.busy[0] / elapsed,
            "machine_irq_cores": w.busy[1] / elapsed,
            "others_cores": w.others,
            "wsmon_runqueue_wait_s": w.runqueue_wait,
            "loadavg": w.loadavg,
            "rss_kb_window": {"first": w.rss[0], "last": w.rss[-1], "max": max(w.rss)},
            "rss_kb_hwm": hwm,
            "rss_kb_per_target": (max(w.rss) - base["rss_kb_after_scrape"]) / n,
            "rss_kb_per_target_before_scrapes": (report["rss_kb_before_scrapes"] - base["rss_kb"]) / n,
            "lag_buckets_delta": lag["buckets"],
            "lag_ticks": lag["count"],
            "lag_p50_ms": lag["p50_ms"],
            "lag_p99_ms": lag["p99_ms"],
            "lag_over_100ms": lag["over_100ms"],
            "lag_observations_per_s": lag["per_s"],
            "scrapes": [{"wall_s": x.wall_s, "wsmon_cpu_s": x.cpu_s, "bytes": x.size} for x in scrapes],
        }
    )
    if rtt_window is not None:
        x = rtt_window
        lag_x = scheduler_lag(x.first, x.final)
        report["rtt_window"] = {
            "window_monotonic": [x.t0, x.t1],
            "scrapes_began_monotonic": [y.began for y in [x.first, *x.during, x.final]],
            "cores": sum(x.wsmon_cpu) / (x.t1 - x.t0),
            "others_cores": x.others,
            "wsmon_runqueue_wait_s": x.runqueue_wait,
            "lag_p50_ms": lag_x["p50_ms"],
            "lag_p99_ms": lag_x["p99_ms"],
        }
        scrapes, final = [x.first, *x.during, x.final], x.final
        began = time.monotonic()
        wire = wire_round_trips(pcap, plan.server_ports, plan.port_names)
        report["capture"] = {
            "packets": wire.packets,
            "gaps": wire.gaps,
            "bytes": pcap.stat().st_size,
            "parse_s": time.monotonic() - began,
        }
        first_chunk = {t[0] for t in plan.targets[:FIRST_CHUNK]}
        groups: dict[str, set[str]] = defaultdict(set)
        for name, _, group, captured in plan.targets:
            if captured:
                groups[group].add(name)
        rtt: dict[str, Any] = {}
        for group, names in groups.items():
            early = names & first_chunk
            ping_err, missing = per_ping_errors(scrapes, wire, early)
            later, _ = per_ping_errors(scrapes, wire, names - first_chunk)
            by_q, pooled, pings, near = per_target_errors(final, wire, early, window, offset)
            rtt[group] = {
                "targets": len(names),
                "first_chunk_targets": len(early),
                "wire_rtt_ms": summary_ms(pooled),
                "per_ping_error_ms": summary_ms(ping_err),
                "per_ping_error_during_scrape_ms": summary_ms(later),
                "per_ping_unmatched": missing,
                "window_pings": pings,
                "window_pings_near_cut": near,
                "per_target_error_ms": {repr(q): summary_ms(v) for q, v in by_q.items()},
            }
        report["rtt"] = rtt
    if not args.keep:
        shutil.rmtree(tmp, ignore_errors=True)
    return report


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
    busy: tuple[float, float]  # the machine's task and interrupt seconds
    runqueue_wait: float  # seconds wsmon was runnable but not running
    rss: list[int]
    loadavg: list[str]

    @property
    def others(self) -> float:
        """Cores used by tasks that are not the benchmark's."""
        mine = sum(self.wsmon_cpu) + sum(self.helper_cpu.values())
        return max(0.0, (self.busy[0] - mine) / (self.t1 - self.t0))


def measure_window(
    seconds: float,
    pid: int,
    helpers: dict[str, subprocess.Popen[bytes]],
    web: int,
    scrape_interval: float,
    first: Scrape,
) -> Window:
    during: list[Scrape] = []
    stop = threading.Event()
    thread = None
    cpu0 = {k: sum(cpu_seconds(p.pid)) for k, p in helpers.items()}
    busy0, wait0 = machine_busy(), runqueue_wait(pid)
    w0, t0 = cpu_seconds(pid), time.monotonic()
    if scrape_interval:
        thread = threading.Thread(target=scrape_every, args=(scrape_interval, web, pid, stop, during), daemon=True)
        thread.start()
    rss: list[int] = []
    while time.monotonic() < t0 + seconds:
        rss.append(memory_kb(pid))
        time.sleep(min(1.0, max(0.0, t0 + seconds - time.monotonic())))
    w1, t1 = cpu_seconds(pid), time.monotonic()
    busy1, wait1 = machine_busy(), runqueue_wait(pid)
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
        busy=(busy1[0] - busy0[0], busy1[1] - busy0[1]),
        runqueue_wait=wait1 - wait0,
        rss=rss,
        loadavg=loadavg,
    )


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


def print_report(r: dict[str, Any]) -> None:
    n = r["targets"]
    print(
        f"{n} persistent targets ({n - r['delayed']} answering at once, {r['delayed']} with delayed pongs; "
        f"url-style {r['url_style']}), "
        f"window {r['seconds']:.1f}s; all connected in {r['connect_all_s']:.1f}s; "
        f"failures {r['failures']:.0f}, reconnects {r['reconnects']:.0f}"
    )
    rows = [
        (
            "CPU, cores (user+sys)",
            f"{r['cores']:.3f} ({r['user_cores']:.3f}+{r['sys_cores']:.3f})",
            GOALS["cores"],
            r["cores"],
        ),
        ("RSS per target, KB", f"{r['rss_kb_per_target']:.2f}", GOALS["rss_kb_per_target"], r["rss_kb_per_target"]),
        (
            "scheduler lag p99, ms",
            f"{r['lag_p99_ms']:.2f} (p50 {r['lag_p50_ms']:.2f})",
            GOALS["lag_p99_ms"],
            r["lag_p99_ms"],
        ),
    ]
    # The error of what wsmon reports for a target's p50 and p99 (its window quantiles) against
    # the same pings on the wire: for the typical target (median) and for 99% of them (p99).
    for group, g in r.get("rtt", {}).items():
        for q, label in (("0.5", "p50"), ("0.99", "p99")):
            t = g["per_target_error_ms"][q]
            if t.get("n"):
                worst = max(abs(t["p99"]), abs(t["min"]))
                text = f"{t['p50']:+.3f} (99%: {t['p99']:+.3f})"
                rows.append((f"RTT error at {label}, {group}, ms", text, GOALS["rtt_error_ms"], worst))
    print(f"{'figure':32} {'measured':>28} {'goal':>7}")
    for label, text, goal, value in rows:
        diluted = label.startswith("scheduler lag") and r["lag_observations_per_s"] > 1.5 / TICK
        print(f"{label:32} {text:>28} {goal:>7g}  {'DILUTED (see below)' if diluted else verdict(value, goal)}")
    print(
        f"CPU per ping {r['cpu_us_per_ping']:.1f} µs; RSS {r['rss_kb_window']['max'] / 1024:.0f} MiB "
        f"(before any scrape {r['rss_kb_before_scrapes'] / 1024:.0f} MiB = {r['rss_kb_per_target_before_scrapes']:.2f}"
        f" KB/target; high-water mark {r['rss_kb_hwm'] / 1024:.0f} MiB; no targets "
        f"{r['baseline']['rss_kb_after_scrape'] / 1024:.0f} MiB)"
    )
    print(
        f"lag: {r['lag_ticks']:.0f} observations ({r['lag_observations_per_s']:.0f}/s), "
        f"{r['lag_over_100ms']:.0f} over 100 ms"
    )
    if r["lag_observations_per_s"] > 1.5 / TICK:
        print(
            f"WARNING: the ping wheel observed its lag more than its {1 / TICK:.0f} times a second: early wake-ups "
            "(busy-waiting until the tick is due) dilute the lag quantiles, which then understate the lag"
        )
    print(
        "scrapes of /metrics: "
        + ", ".join(f"{s['wall_s']:.2f}s/{s['wsmon_cpu_s']:.2f}s CPU/{s['bytes'] / 1e6:.1f}MB" for s in r["scrapes"])
    )
    print(
        "other processes, cores: "
        + ", ".join(f"{k} {v:.3f}" for k, v in r["helpers_cores"].items())
        + f"; interrupts (loopback traffic) {r['machine_irq_cores']:.2f}; other work {r['others_cores']:.2f} "
        f"of {os.cpu_count()} (load {' '.join(r['loadavg'])}); wsmon waited {r['wsmon_runqueue_wait_s'] * 1e3:.0f} ms "
        f"for a CPU{' (SCHED_FIFO)' if r['sched_fifo'] else ''}; window {r['window_chosen']} of {len(r['windows'])}"
    )
    if r["others_cores"] > GOALS["cores"]:
        print("WARNING: other work used the machine during the window: lag and RTT errors are inflated")
    if "rtt_window" in r:
        x = r["rtt_window"]
        print(
            f"round trips: from a window of their own, with tcpdump running: wsmon {x['cores']:.3f} cores, lag p50 "
            f"{x['lag_p50_ms']:.2f} p99 {x['lag_p99_ms']:.2f} ms, other work {x['others_cores']:.2f} cores, "
            f"wsmon waited {x['wsmon_runqueue_wait_s'] * 1e3:.0f} ms for a CPU"
        )
    for group, g in r.get("rtt", {}).items():
        w, e, d = g["wire_rtt_ms"], g["per_ping_error_ms"], g["per_ping_error_during_scrape_ms"]
        print(
            f"{group}: {g['targets']} targets captured, {g['first_chunk_targets']} read first by each scrape; "
            f"their wire RTT p50 {w.get('p50', math.nan):.3f} p99 {w.get('p99', math.nan):.3f} ms"
        )
        print(
            f"    last ping before a scrape − wire (n={e.get('n', 0)}, unmatched {g['per_ping_unmatched']}): "
            f"p50 {e.get('p50', math.nan):+.3f} p99 {e.get('p99', math.nan):+.3f} max {e.get('max', math.nan):+.3f} ms"
        )
        if d.get("n"):
            print(
                f"    the same for the targets read later, while the scrape runs (n={d['n']}): "
                f"p50 {d['p50']:+.3f} p99 {d['p99']:+.3f} max {d['max']:+.3f} ms"
            )
        for q in ("0.5", "0.99", "1.0"):
            t = g["per_target_error_ms"][q]
            if t.get("n"):
                print(
                    f"    window q{q} − wire q{q}, over {t['n']} targets: p50 {t['p50']:+.3f} p99 {t['p99']:+.3f} "
                    f"min {t['min']:+.3f} max {t['max']:+.3f} ms"
                )
        print(f"    windows: {g['window_pings']} pings, {g['window_pings_near_cut']} within 2 ms of a cut")
    if "capture" in r:
        c = r["capture"]
        print(
            f"capture: {c['packets']} segments, {c['bytes'] / 1e6:.0f} MB, {c['gaps']} gaps, parsed in "
            f"{c['parse_s']:.1f}s; tcpdump: {'; '.join(r['tcpdump'])}"
        )


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


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--targets", type=int, default=10_000, help="persistent targets (default 10000)")
    parser.add_argument("--delayed", type=int, help="of which served with delayed pongs (default a tenth)")
    parser.add_argument("--seconds", type=int, default=60, help="measured window (default 60)")
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
    parser.add_argument("--scrape-every", type=float, default=0.0, help="also scrape /metrics every S seconds")
    parser.add_argument("--profile", action="store_true", help="py-spy wsmon during the window")
    parser.add_argument("--timeout", type=float, default=10.0, help="wsmon's timeout setting (default 10)")
    parser.add_argument("--connect-limit", type=float, default=180.0, help="seconds allowed to connect them all")
    parser.add_argument(
        "--wait-quiet",
        type=float,
        default=0.0,
        metavar="S",
        help="before the window, wait up to S seconds for other work on the machine to calm down",
    )
    parser.add_argument("--tries", type=int, default=3, help="windows to try for a quiet one (default 3)")
    parser.add_argument(
        "--max-others",
        type=float,
        default=0.25,
        help="cores other work may use during a window for it to count as quiet (default 0.25)",
    )
    parser.add_argument(
        "--sched-fifo",
        action="store_true",
        help="run wsmon's thread with SCHED_FIFO priority 10 during the windows: its own lag, not a busy machine's",
    )
    parser.add_argument("--keep", action="store_true", help="keep the work directory (config, logs)")
    args = parser.parse_args()
    if args.delayed is None:
        args.delayed = args.targets // 10
    if not 0 <= args.delayed <= args.targets or args.targets < 1:
        parser.error("need 0 ≤ --delayed ≤ --targets and --targets ≥ 1")
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
            **wsmon_origin(),
        }
    )
    out.write_text(json.dumps(report, indent=2, default=str) + "\n")
    print(f"results: {out.relative_to(ROOT)}")
    return 1 if report["failures"] or report["reconnects"] else 0


if __name__ == "__main__":
    sys.exit(main())
