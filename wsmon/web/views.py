"""One target as the API shows it: a row of the fleet's table, or the detail of one target.

Nothing secret: the URL is the redacted one, error messages are scrubbed of configured secrets.
"""

from __future__ import annotations

import math
from typing import Any

from wsmon.config.file import Mode
from wsmon.continuous.store import LastError, TargetState
from wsmon.redact import secrets

__all__ = ["detail_view", "error_view", "milliseconds", "target_view"]

HISTORY = 30  # latency samples per row, for its small sparkline
DETAIL_HISTORY = 240  # points of the detail's sparkline: the whole window, the highest of each stretch
_QUANTILES = (0.5, 0.99)


def milliseconds(seconds: float | None) -> float | None:
    return None if seconds is None or math.isnan(seconds) else round(seconds * 1000, 3)


def error_view(error: LastError | None) -> dict[str, Any] | None:
    if error is None:
        return None
    return {"reason": str(error.reason), "message": secrets.scrub(error.message), "at": error.at}


def target_view(state: TargetState, runtime: bool, now: float, url: str | None = None) -> dict[str, Any]:
    """A row: status, latency now and over the window, the last error (``now``: perf_counter;
    ``url``: the redacted URL when the caller has it at hand)."""
    return _view(state, runtime, now, state.window.samples(now), url)


def _view(state: TargetState, runtime: bool, now: float, samples: list[float], url: str | None) -> dict[str, Any]:
    target = state.target
    persistent = target.mode is Mode.PERSISTENT
    p50, p99 = state.window.quantiles(now, _QUANTILES) or (None, None)
    return {
        "name": target.name,
        "url": target.redacted_url if url is None else url,
        "mode": str(target.mode),
        "module": target.module.name,
        "labels": dict(target.labels),
        "status": str(state.status),
        "since": state.health_since,
        "latency_ms": milliseconds(state.last_rtt),
        "p50_ms": milliseconds(p50),
        "p99_ms": milliseconds(p99),
        "history_ms": [milliseconds(s) for s in samples[-HISTORY:]],
        "auto_reconnect": persistent and not state.paused,
        "paused": state.paused,
        "runtime": runtime,
        "reconnects": state.reconnects,
        "last_error": error_view(state.last_error),
    }


def detail_view(state: TargetState, runtime: bool, now: float) -> dict[str, Any]:
    """A row and what one click on it should show: the last errors with their reasons and
    times, the whole window's sparkline, counters, timing settings."""
    target = state.target
    samples = state.window.samples(now)
    view = _view(state, runtime, now, samples, None)
    view.update(
        history_ms=[milliseconds(s) for s in _peaks(samples, DETAIL_HISTORY)],
        samples=len(samples),
        errors=[error_view(e) for e in state.recent_errors()],
        failures={str(reason): count for reason, count in sorted(state.failures.items())},
        successes=state.pings_ok,
        interval_s=None if target.mode is Mode.PERSISTENT else target.interval,
        timeout_s=target.timeout,
        connected_since=state.connected_since,
        connect_ms=milliseconds(state.last_connect),
        messages=state.messages,
        last_message_at=state.last_message_at,
        values={name: {"value": v, "changed_at": at} for name, (v, at) in sorted(state.values.items())},
    )
    return view


def _peaks(samples: list[float], points: int) -> list[float]:
    """At most ``points`` values: the samples themselves, or the highest of each stretch (a
    spike must not vanish when the window is drawn small)."""
    if len(samples) <= points:
        return samples
    step = len(samples) / points
    return [max(samples[int(i * step) : int((i + 1) * step)]) for i in range(points)]
