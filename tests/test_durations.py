"""Go-style durations (wsmon.durations)."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from wsmon.durations import format_duration, parse_duration


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("0", 0.0),
        ("0s", 0.0),
        ("0ms", 0.0),
        ("500ms", 0.5),
        ("10s", 10.0),
        ("1m30s", 90.0),
        ("1h", 3600.0),
        ("2h45m", 9900.0),
        ("1h2m3s4ms", 3723.004),
        ("1.5s", 1.5),
        (".5s", 0.5),
        ("1.s", 1.0),
        ("1.5m", 90.0),
        ("100us", 1e-4),
        ("100µs", 1e-4),
        ("250ns", 2.5e-7),
        (" 10s ", 10.0),
        ("1m1m", 120.0),
    ],
)
def test_parse_duration(text: str, seconds: float) -> None:
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize(
    "text", ["", " ", "10", "1.5", "s", "10x", "10S", "1 s", "10s ms", "-1s", "+1s", "1e3s", "1s-", "ms10", "1d", "0x"]
)
def test_invalid_durations(text: str) -> None:
    with pytest.raises(ValueError) as caught:
        parse_duration(text)
    assert str(caught.value) == f"invalid duration {text!r}: use a number with a unit, e.g. 500ms, 10s, 1m30s"


@given(st.text())
def test_parse_duration_raises_only_value_error(text: str) -> None:
    try:
        seconds = parse_duration(text)
    except ValueError:
        return
    assert seconds >= 0


@given(st.text(alphabet="0123456789.µnumsh ", max_size=20))
def test_parse_duration_on_near_miss_text_raises_only_value_error(text: str) -> None:
    with contextlib.suppress(ValueError):
        parse_duration(text)


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0, "0s"),
        (0.5, "500ms"),
        (0.0015, "1.5ms"),
        (1, "1s"),
        (1.5, "1.5s"),
        (10, "10s"),
        (60, "1m"),
        (90, "1m30s"),
        (120, "2m"),
        (3600, "1h"),
        (3661, "1h1m1s"),
        (7200, "2h"),
        (61.5, "61.5s"),
    ],
)
def test_format_duration(seconds: float, text: str) -> None:
    assert format_duration(seconds) == text
    assert parse_duration(text) == pytest.approx(seconds)


@given(st.integers(min_value=0, max_value=7 * 24 * 3600))
def test_whole_seconds_round_trip(seconds: int) -> None:
    assert parse_duration(format_duration(seconds)) == seconds


@given(st.integers(min_value=1, max_value=999))
def test_milliseconds_round_trip(ms: int) -> None:
    assert parse_duration(format_duration(ms / 1000)) == pytest.approx(ms / 1000)


@pytest.mark.parametrize("seconds", [1e-8, 1234567.5, 86400.001, 10000.25])
@pytest.mark.xfail(
    strict=True,
    reason="wsmon/durations.py format_duration() formats with '{:g}' (6 significant digits, "
    "exponent notation): 1e-8 → '1e-05ms' and 1234567.5 → '1.23457e+06s', which parse_duration "
    "rejects; 86400.001 → '86400s' and 10000.25 → '10000.2s' lose precision",
)
def test_format_duration_round_trips_any_duration(seconds: float) -> None:
    assert parse_duration(format_duration(seconds)) == pytest.approx(seconds, rel=1e-9)
