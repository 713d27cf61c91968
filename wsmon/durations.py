"""Go-style durations ("500ms", "10s", "1m30s"), as Prometheus tooling writes them."""

from __future__ import annotations

import re

__all__ = ["format_duration", "parse_duration"]

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


def format_duration(seconds: float) -> str:
    """The shortest Go-style spelling of a duration, for help texts and messages."""
    if seconds == 0:
        return "0s"
    if seconds < 1:
        ms = seconds * 1000
        return f"{ms:g}ms"
    whole_minutes, rest = divmod(seconds, 60)
    if whole_minutes and seconds == int(seconds):
        hours, minutes = divmod(int(whole_minutes), 60)
        out = (f"{hours}h" if hours else "") + (f"{minutes}m" if minutes else "")
        return out + (f"{int(rest)}s" if rest else "")
    return f"{seconds:g}s"
