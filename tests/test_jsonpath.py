"""The small JSON path and number conversion (wsmon.probe.jsonpath)."""

from __future__ import annotations

import contextlib
import math
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from wsmon.probe.jsonpath import MISSING, JsonPath, to_number


@pytest.mark.parametrize(
    ("text", "keys"),
    [
        ("result", ("result",)),
        ("$.result", ("result",)),
        ("$.result.number", ("result", "number")),
        ("params.result[0].hash", ("params", "result", 0, "hash")),
        ("$", ()),
        ("[0]", (0,)),
        ("$[12]", (12,)),
        ("$['a b']", ("a b",)),
        ('$["x.y"]', ("x.y",)),
        ("$['']", ("",)),
        ("a-b._c", ("a-b", "_c")),
        ("  result  ", ("result",)),
        ("a[0][1]", ("a", 0, 1)),
    ],
)
def test_parse(text: str, keys: tuple[str | int, ...]) -> None:
    path = JsonPath.parse(text)
    assert (path.text, path.keys) == (text, keys)


@pytest.mark.parametrize(
    "text", ["", " ", "a..b", "a.", "$.", ".a", "$a", "a[", "a[x]", "a[-1]", "1abc", "a b", "$.*", "a[0", "$$"]
)
def test_parse_errors(text: str) -> None:
    with pytest.raises(ValueError) as caught:
        JsonPath.parse(text)
    assert str(caught.value) == (
        f"invalid JSON path {text!r}: use dotted keys and [index], e.g. result or $.params.result[0]"
    )


@given(st.text())
def test_parse_raises_only_value_error(text: str) -> None:
    try:
        path = JsonPath.parse(text)
    except ValueError:
        return
    assert path.text == text


@given(st.text(alphabet="$.[]'\"0123456789abc_- ", max_size=20))
def test_parse_near_misses_raise_only_value_error(text: str) -> None:
    with contextlib.suppress(ValueError):
        JsonPath.parse(text)


DOC = {"result": {"number": "0x10", "list": [1, {"hash": "0xab"}], "null": None, "false": False}, "a b": 3}


@pytest.mark.parametrize(
    ("text", "found"),
    [
        ("$", DOC),
        ("result.number", "0x10"),
        ("$.result.list[0]", 1),
        ("result.list[1].hash", "0xab"),
        ("result.null", None),  # JSON null is found, not missing
        ("result.false", False),
        ("$['a b']", 3),
        ("missing", MISSING),
        ("result.list[2]", MISSING),
        ("result.number.deeper", MISSING),
        ("result[0]", MISSING),  # an index into an object
        ("result.list.x", MISSING),  # a key into an array
    ],
)
def test_find(text: str, found: Any) -> None:
    value = JsonPath.parse(text).find(DOC)
    if found is MISSING:
        assert value is MISSING
    else:
        assert value == found and type(value) is type(found)


def test_find_on_non_containers() -> None:
    assert JsonPath.parse("result").find([1, 2]) is MISSING
    assert JsonPath.parse("[0]").find({"0": 1}) is MISSING
    assert JsonPath.parse("x").find("string") is MISSING
    assert JsonPath.parse("$").find(None) is None


@pytest.mark.parametrize(
    ("value", "number"),
    [
        (1, 1.0),
        (-2, -2.0),
        (1.5, 1.5),
        (True, 1.0),
        (False, 0.0),
        ("0x1b4", 436.0),
        ("0X1B4", 436.0),
        ("0x0", 0.0),
        (" 42 ", 42.0),
        ("1e3", 1000.0),
        ("-0.5", -0.5),
        ("abc", None),
        ("", None),
        ("0x", None),
        ("0xzz", None),
        (None, None),
        ([], None),
        ({}, None),
        ([1], None),
    ],
)
def test_to_number(value: Any, number: float | None) -> None:
    assert to_number(value) == number


def test_to_number_of_a_decimal_string_beyond_float_range() -> None:
    assert to_number("1" + "0" * 400) == math.inf


def test_to_number_of_a_large_block_quantity() -> None:
    assert to_number("0x" + "f" * 64) == float(2**256 - 1)  # a uint256, e.g. a balance in wei


@pytest.mark.parametrize("value", [10**400, "0x" + "f" * 300], ids=["int-1e400", "hex-300-digits"])
def test_to_number_of_huge_numbers_does_not_raise(value: Any) -> None:
    number = to_number(value)
    assert number is None or math.isinf(number)
