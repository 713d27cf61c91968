"""Go-style durations ("500ms", "10s", "1m30s"), as Prometheus tooling writes them."""

from __future__ import annotations

import re

__all__ = ["parse_duration"]

_UNITS = {
    "ns": 1e-9,
    "us": 1e-6,
    "µs": 1e-6,
    "ms": 1e-3,
    "s": 1.0,
    "m": 60.0,
    "h": 3600.0,
}
_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)")


def parse_duration(text: str) -> float:
    """Return the duration in seconds; raise ValueError with a message a user can act on.

    A bare number is not accepted (is "10" seconds or milliseconds?), except "0".
    """
    value = text.strip()
    if value == "0":
        return 0.0
    pos = 0
    total = 0.0
    for match in _PART.finditer(value):
        if match.start() != pos:
            break
        total += float(match.group(1)) * _UNITS[match.group(2)]
        pos = match.end()
    if pos == 0 or pos != len(value):
        raise ValueError(f"invalid duration {text!r}: use a number with a unit, e.g. 500ms, 10s, 1m30s")
    return total
