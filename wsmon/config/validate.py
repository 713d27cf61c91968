"""Checks shared by every part of the config file: known keys, TOML types, durations.

Messages name the key and the types involved, never the value: a secret typed into the
wrong key must not end up in an error message.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from wsmon.config.durations import parse_duration
from wsmon.errors import ConfigError

__all__ = ["LABEL_NAME", "MAX_DURATION", "check_keys", "duration", "duration_in_bounds", "typed"]

# The longest duration anything takes (interval, timeout, window, backoff, push period): a
# week is past any sensible setting, and "999999999999h" is a typo to report, not to schedule.
MAX_DURATION = 7 * 24 * 3600.0
_MAX_DURATION_TEXT = "168h (a week)"

# A Prometheus label name (also what extracted values are named by).
LABEL_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")


def check_keys(table: Mapping[str, Any], allowed: set[str], where: str) -> None:
    unknown = sorted(set(table) - allowed)
    if unknown:
        raise ConfigError(f"{where}: unknown key {unknown[0]!r}; allowed keys are {', '.join(sorted(allowed))}")


_TOML_TYPES: tuple[tuple[type, str], ...] = (
    (bool, "a boolean"),  # before int: a bool is an int in Python
    (int, "an integer"),
    (float, "a float"),
    (str, "a string"),
    (list, "an array"),
    (Mapping, "a table"),
)


def _toml_type(value: Any) -> str:
    return next((name for kind, name in _TOML_TYPES if isinstance(value, kind)), "a date or time")


def typed(table: Mapping[str, Any], key: str, kind: type, where: str) -> Any:
    """``table[key]`` if it has the TOML type ``kind``; the message names types, never the value
    (a secret given in the wrong place must not end up in an error)."""
    value = table[key]
    if _toml_type(value) != _toml_type_of(kind):
        raise ConfigError(f"{where}: {key} must be {_toml_type_of(kind)}, not {_toml_type(value)}")
    return value


def _toml_type_of(kind: type) -> str:
    return next(name for k, name in _TOML_TYPES if issubclass(kind, k) or kind is k)


def duration_in_bounds(text: str) -> float:
    """``parse_duration`` of ``text``, at most ``MAX_DURATION``; ValueError says what to do."""
    seconds = parse_duration(text)
    if not seconds <= MAX_DURATION:
        raise ValueError(f"duration {text!r} is too long: the longest wsmon accepts is {_MAX_DURATION_TEXT}")
    return seconds


def duration(table: Mapping[str, Any], key: str, where: str) -> float:
    text = typed(table, key, str, where)
    try:
        return duration_in_bounds(text)
    except ValueError as exc:
        raise ConfigError(f"{where}: {key}: {exc}") from None
