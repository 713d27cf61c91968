"""What ``wsmon check`` prints: one probe's phases, a line per repeated probe, a summary.

Pure formatting of ProbeResults; every URL shown here is already redacted.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from wsmon.probe.result import PingStats, ProbeResult

__all__ = ["probe_json", "probe_line", "probe_report", "summary_json", "summary_lines"]


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:.2f} ms"


def _verdict(result: ProbeResult) -> str:
    if result.success:
        return f"UP in {_ms(result.duration)}"
    return f"DOWN ({result.reason}) after {_ms(result.duration)}: {result.error}"


def probe_report(target: str, module: str, result: ProbeResult) -> list[str]:
    """The one-shot answer: a line per phase with its time, then the verdict and reason."""
    lines = [f"PROBE {target} (module {module}, timeout {result.timeout:g}s)"]
    for phase, seconds in result.phases.items():
        detail = ""
        if phase == "upgrade" and result.status_code is not None:
            detail = f"  HTTP {result.status_code}"
        elif phase == "tls" and result.tls_version:
            detail = f"  {result.tls_version}"
        elif phase == "ping" and result.ping is not None:
            ping = result.ping
            detail = "  rtt " + ", ".join([_ms(rtt) for rtt in ping.rtts] + ["untimed"] * ping.untimed)
        lines.append(f"  {phase:<9}{_ms(seconds):>12}{detail}")
        if phase == "message":
            for step in result.steps:
                value = f"  {step.value_name}={step.value:g}" if step.value is not None else ""
                state = "ok" if step.success else "failed"
                lines.append(f"    step {step.index + 1}{_ms(step.duration):>12}  {state}{value}")
    lines.append(_verdict(result))
    return lines


def probe_line(seq: int, result: ProbeResult) -> str:
    """One line per probe for --count, like ping(8)'s."""
    if not result.success:
        return f"{seq}: DOWN {result.reason}: {result.error} ({_ms(result.duration)})"
    parts = [f"{seq}: UP", f"connect {_ms(result.connect_duration)}"]
    if result.ping_rtt is not None:
        parts.append(f"ping {_ms(result.ping_rtt)}")
    parts.append(f"total {_ms(result.duration)}")
    return "  ".join(parts)


def _rtts(results: Sequence[ProbeResult]) -> PingStats:
    rtts = tuple(r.ping_rtt for r in results if r.success and r.ping_rtt is not None)
    return PingStats(sent=len(rtts), rtts=rtts)


def summary_lines(target: str, results: Sequence[ProbeResult], elapsed: float) -> list[str]:
    up = sum(r.success for r in results)
    loss = 0.0 if not results else 100.0 * (len(results) - up) / len(results)
    lines = [
        f"--- {target} wsmon statistics ---",
        f"{len(results)} probes, {up} up, {loss:.0f}% down, time {elapsed * 1000:.0f} ms",
    ]
    stats = _rtts(results)
    if stats.rtts:
        figures = "/".join(f"{v * 1000:.3f}" for v in (stats.min, stats.avg, stats.max, stats.jitter))
        lines.append(f"ping rtt min/avg/max/mdev = {figures} ms")
    return lines


def _number(value: float | None) -> float | None:
    return None if value is None or math.isnan(value) else value


def probe_json(target: str, module: str, result: ProbeResult) -> dict[str, Any]:
    ping = result.ping
    return {
        "target": target,
        "module": module,
        "success": result.success,
        "reason": None if result.reason is None else str(result.reason),
        "error": result.error or None,
        "duration_seconds": result.duration,
        "timeout_seconds": result.timeout,
        "phases": {str(k): v for k, v in result.phases.items()},
        "status_code": result.status_code,
        "tls_version": result.tls_version,
        "ping": None
        if ping is None
        else {
            "sent": ping.sent,
            "received": ping.received,
            "rtts_seconds": list(ping.rtts),
            "untimed": ping.untimed,
            "loss_ratio": ping.loss_ratio,
        },
        "steps": [
            {
                "step": s.index + 1,
                "success": s.success,
                "duration_seconds": s.duration,
                "value_name": s.value_name,
                "value": s.value,
            }
            for s in result.steps
        ],
    }


def summary_json(target: str, results: Sequence[ProbeResult], elapsed: float) -> dict[str, Any]:
    stats = _rtts(results)
    return {
        "target": target,
        "probes": len(results),
        "up": sum(r.success for r in results),
        "elapsed_seconds": elapsed,
        "ping_rtt_seconds": {
            "min": _number(stats.min),
            "avg": _number(stats.avg),
            "max": _number(stats.max),
            "mdev": _number(stats.jitter),
        },
    }
