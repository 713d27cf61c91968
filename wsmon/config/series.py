"""Which series a target exports: its series budget (``[settings.series]``, a target's ``series``).

10,000 targets at ~50 series each are half a million series; an operator chooses what each
target is worth. The switches:

- ``histograms``: the cumulative histograms ``wsmon_connect_duration_seconds`` and
  ``wsmon_ping_pong_duration_seconds`` (``buckets``: their upper bounds in seconds);
- ``quantiles``: which figures of the rolling window ``wsmon_ping_pong_window_seconds`` exports
  (``[]``: none, the family goes);
- ``phases``: the per-phase gauges ``probe_websocket_duration_seconds{phase}`` of probe mode;
- ``details``: the other per-probe gauges of probe mode (status code, timeout, IP protocol, TLS
  version and certificate expiry, multi-ping figures, message steps);
- ``blackbox``: blackbox_exporter's websocket prober's names as well, where they mean the same
  (``probe_websocket_connection_upgraded``, ``probe_dns_lookup_time_seconds``) and its phase
  names (``processing`` for TLS + upgrade, ``transfer`` for the message steps). Off by default;
  it also applies to ``/probe`` (the target's, or ``[settings.series]`` for a URL).

Two presets: ``full`` (everything, the default) and ``lean`` (all four off: the seed's six
gauges, the failure reason, connection state and the counters). ``[settings.series]`` applies
to every target; a target's own ``series`` starts from it (or from its ``preset``) and changes
only the keys it names. ``/probe`` is not budgeted (its scraper asks for one result), but for
``blackbox``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from wsmon.config.validate import check_keys, typed
from wsmon.errors import ConfigError

__all__ = ["FULL", "PRESETS", "SeriesBudget", "parse_series"]

MAX_BUCKETS = 64  # a histogram's bounds: each one is a series per target
_KEYS = {"preset", "histograms", "buckets", "quantiles", "phases", "details", "blackbox"}


@dataclass(frozen=True, slots=True)
class SeriesBudget:
    histograms: bool = True
    buckets: tuple[float, ...] | None = None  # None: wsmon's (wsmon.metrics.histogram.LATENCY_BUCKETS)
    quantiles: tuple[float, ...] = (0.0, 0.5, 0.9, 0.99, 1.0)  # of the window: 0 is the minimum, 1 the maximum
    phases: bool = True
    details: bool = True
    blackbox: bool = False


FULL = SeriesBudget()  # the default: every series
PRESETS: Mapping[str, SeriesBudget] = {
    "full": FULL,
    "lean": SeriesBudget(histograms=False, quantiles=(), phases=False, details=False),
}


def _numbers(table: Mapping[str, Any], key: str, where: str) -> list[float]:
    values = typed(table, key, list, where)
    if not all(isinstance(v, int | float) and not isinstance(v, bool) for v in values):
        raise ConfigError(f"{where}: {key} must be an array of numbers")
    numbers = [float(v) for v in values]
    if not all(math.isfinite(v) for v in numbers):
        raise ConfigError(f"{where}: {key} must hold finite numbers (no inf or nan)")
    return numbers


def _buckets(table: Mapping[str, Any], where: str) -> tuple[float, ...]:
    bounds = _numbers(table, "buckets", where)
    if not 1 <= len(bounds) <= MAX_BUCKETS:
        raise ConfigError(f"{where}: buckets must hold 1 to {MAX_BUCKETS} upper bounds in seconds (+Inf is added)")
    if bounds[0] <= 0 or any(b >= a for a, b in zip(bounds[1:], bounds, strict=False)):
        raise ConfigError(f"{where}: buckets must be positive and increasing, e.g. [0.001, 0.01, 0.1, 1]")
    return tuple(bounds)


def _quantiles(table: Mapping[str, Any], where: str) -> tuple[float, ...]:
    qs = _numbers(table, "quantiles", where)
    if not all(0 <= q <= 1 for q in qs):
        raise ConfigError(f"{where}: quantiles must lie between 0 (the minimum) and 1 (the maximum)")
    if len(set(qs)) != len(qs):
        raise ConfigError(f"{where}: quantiles lists a quantile twice")
    return tuple(sorted(qs))


def parse_series(raw: Any, where: str, base: SeriesBudget) -> SeriesBudget:
    """A ``series`` setting over ``base``: a preset's name, or a table of the keys above."""
    where = f"{where}: series"
    if isinstance(raw, str):
        raw = {"preset": raw}
    if not isinstance(raw, Mapping):
        raise ConfigError(f'{where} must be a preset ("full" or "lean") or a table')
    check_keys(raw, _KEYS, where)
    budget = base
    if "preset" in raw:
        preset = PRESETS.get(typed(raw, "preset", str, where))
        if preset is None:
            raise ConfigError(f"{where}: preset must be one of {', '.join(PRESETS)}")
        budget = preset
    changes: dict[str, Any] = {
        key: typed(raw, key, bool, where) for key in ("histograms", "phases", "details", "blackbox") if key in raw
    }
    if "buckets" in raw:
        changes["buckets"] = _buckets(raw, where)
    if "quantiles" in raw:
        changes["quantiles"] = _quantiles(raw, where)
    return replace(budget, **changes)
