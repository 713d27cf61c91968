"""Go-style durations (wsmon.config.durations)."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from wsmon.config.durations import parse_duration


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
