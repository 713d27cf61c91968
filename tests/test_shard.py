"""``--shard=I/N`` (wsmon.continuous.shard) and the spread of probe start times
(wsmon.continuous.scheduler.start_offset)."""

from __future__ import annotations

from collections import Counter

import pytest
from hypothesis import given
from hypothesis import strategies as st

from wsmon.continuous.scheduler import start_offset
from wsmon.continuous.shard import parse_shard, shard_of

NAMES = [f"node-{i}" for i in range(3000)]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("0/1", (0, 1)),
        ("0/3", (0, 3)),
        ("1/3", (1, 3)),
        ("2/3", (2, 3)),
        ("9/10", (9, 10)),
        ("01/03", (1, 3)),
        ("99/100", (99, 100)),
        ("0-of-4", (0, 4)),  # a wsmon@0-of-4 systemd unit's instance name
        ("3-of-4", (3, 4)),
    ],
)
def test_parse_shard_valid(text: str, expected: tuple[int, int]) -> None:
    assert parse_shard(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "",
        "1",
        "3/3",  # index out of range: numbered from 0
        "4/3",
        "0/0",
        "-1/3",
        "+1/3",
        "1/-3",
        "a/3",
        "1/b",
        "1/",
        "/3",
        "/",
        "1/3/5",
        "1:3",
        "1.0/3",
        " 1/3",
        "1/3 ",
        "1 / 3",
        "0x1/3",
        "²/3",  # str.isdigit() says yes; the usage message must still come
        "١/٣",  # Arabic-Indic digits: not a shard number
        "4-of-4",
        "1-3",
        "1of3",
        "1-of-3/3",
    ],
)
def test_parse_shard_invalid(text: str) -> None:
    with pytest.raises(ValueError) as info:
        parse_shard(text)
    assert str(info.value) == f"invalid shard {text!r}: use I/N (or I-of-N) with 0 <= I < N, e.g. 0/3"


# Fixed values: a change of hash (or of jump hashing) would reshuffle every fleet on upgrade.
@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("eth-mainnet-1", [0, 1, 1, 1, 9, 69]),
        ("node", [0, 1, 1, 1, 6, 75]),
        ("a", [0, 0, 0, 0, 6, 11]),
        ("self-echo-probe", [0, 1, 1, 1, 1, 45]),
        ("", [0, 0, 2, 2, 5, 62]),
    ],
)
def test_shard_of_fixed_values(name: str, expected: list[int]) -> None:
    assert [shard_of(name, n) for n in (1, 2, 3, 5, 10, 100)] == expected


@given(st.text(max_size=40), st.integers(min_value=1, max_value=1000))
def test_shard_of_in_range_and_stable(name: str, shards: int) -> None:
    shard = shard_of(name, shards)
    assert 0 <= shard < shards
    assert shard_of(name, shards) == shard


@pytest.mark.parametrize("shards", [2, 3, 5, 10])
def test_shard_of_roughly_balanced(shards: int) -> None:
    counts = Counter(shard_of(name, shards) for name in NAMES)
    assert set(counts) == set(range(shards))
    fair = len(NAMES) / shards
    for shard, count in counts.items():
        assert 0.8 * fair <= count <= 1.2 * fair, (shard, count, fair)


@pytest.mark.parametrize("shards", [1, 2, 3, 5, 9])
def test_adding_a_shard_moves_about_one_in_n_plus_one(shards: int) -> None:
    before = {name: shard_of(name, shards) for name in NAMES}
    after = {name: shard_of(name, shards + 1) for name in NAMES}
    moved = [name for name in NAMES if before[name] != after[name]]
    # Jump hashing: whatever moves, moves to the new shard; nothing shuffles between old ones.
    assert all(after[name] == shards for name in moved)
    expected = len(NAMES) / (shards + 1)
    assert 0.7 * expected <= len(moved) <= 1.3 * expected, (len(moved), expected)


@pytest.mark.parametrize(
    ("name", "interval", "expected"),
    [
        ("eth-mainnet-1", 30.0, 12.85928884986788),
        ("node", 30.0, 6.051351875066757),
        ("a", 30.0, 23.688033220823854),
        ("self-echo-probe", 30.0, 1.304962607100606),
        ("node", 1.0, 0.2017117291688919),
    ],
)
def test_start_offset_fixed_values(name: str, interval: float, expected: float) -> None:
    assert start_offset(name, interval) == pytest.approx(expected, rel=1e-12)


@given(
    st.text(max_size=40),
    st.floats(min_value=1e-3, max_value=7 * 86400.0, allow_nan=False, allow_infinity=False),
)
def test_start_offset_within_interval_and_stable(name: str, interval: float) -> None:
    offset = start_offset(name, interval)
    assert 0.0 <= offset < interval
    assert start_offset(name, interval) == offset


def test_start_offset_scales_with_interval() -> None:
    # The same place in every interval: a reload that changes the interval keeps the spread.
    for name in NAMES[:50]:
        assert start_offset(name, 60.0) == pytest.approx(2 * start_offset(name, 30.0), rel=1e-12)


def test_start_offsets_spread_over_the_interval() -> None:
    # No thundering herd: 3000 targets on a 30 s interval fill every second of it, roughly evenly.
    seconds = Counter(int(start_offset(name, 30.0)) for name in NAMES)
    assert set(seconds) == set(range(30))
    assert max(seconds.values()) <= 2 * len(NAMES) / 30
