"""What the dashboard reads of a fleet without walking it: the Store's counts, version and health
log kept as it is written, and the Fleet's queries (problems first, search, filters, order)."""

from __future__ import annotations

import random
from collections import Counter

import pytest
from starlette.datastructures import QueryParams

from wsmon.config.file import Mode, Target
from wsmon.continuous import store as store_module
from wsmon.continuous.store import RECENT_ERRORS, Status, Store, TargetState
from wsmon.probe.module import BUILTIN_MODULES
from wsmon.probe.reasons import Reason
from wsmon.probe.result import PingStats, ProbeResult
from wsmon.web.fleet import Fleet, Query, QueryError, etag_matches, parse_query

PING = BUILTIN_MODULES["ping"]


def target(name: str, mode: Mode = Mode.PERSISTENT, **labels: str) -> Target:
    return Target(
        name=name, url=f"ws://{name}.example:8546/s3cret-{name}", module=PING, mode=mode, labels=tuple(labels.items())
    )


def add(store: Store, name: str, mode: Mode = Mode.PERSISTENT, **labels: str) -> TargetState:
    return store.add(target(name, mode, **labels), window=300.0, sample_interval=1.0)


def probed(success: bool, rtt: float = 0.002) -> ProbeResult:
    if success:
        return ProbeResult(success=True, duration=0.01, timeout=5.0, up=True, ping=PingStats(sent=1, rtts=(rtt,)))
    return ProbeResult(success=False, duration=0.01, timeout=5.0, reason=Reason.REFUSED, error="connect failed")


def connected(state: TargetState, rtt: float | None = None) -> TargetState:
    state.record_connecting()
    state.record_connected(0.001)
    if rtt is not None:
        state.record_pong(rtt, 1000.0)
    return state


def recount(store: Store) -> dict[Status, int]:
    found = Counter(s.status for s in store)
    return {status: found.get(status, 0) for status in Status}


# --- the Store's bookkeeping ------------------------------------------------------------------


def test_counts_and_version_follow_every_status_change() -> None:
    """Random writes, additions, removals, pauses: the kept counts are always a recount's, and
    the version moves exactly when a status (or the membership) does."""
    rnd = random.Random(7)
    store = Store()
    for i in range(40):
        add(store, f"p{i:02d}", Mode.PERSISTENT if i % 2 else Mode.PROBE)
    for step in range(3000):
        names = [s.target.name for s in store]
        state = store.get(rnd.choice(names))
        assert state is not None
        before_version, before = store.version, {s.target.name: s.status for s in store}
        action = rnd.randrange(9)
        if action == 0:
            state.record_connecting()
        elif action == 1:
            state.record_connected(0.001)
        elif action == 2:
            state.record_disconnected()
        elif action == 3:
            state.record_probe(probed(rnd.random() < 0.5), 1000.0 + step)
        elif action == 4:
            state.paused = not state.paused
        elif action == 5:
            state.record_pong(0.001, 1000.0 + step)
        elif action == 6:
            state.record_failure(Reason.CLOSED, "gone")
        elif action == 7 and len(names) > 10:
            store.remove(state.target.name)
        else:
            add(store, f"n{step}", rnd.choice([Mode.PERSISTENT, Mode.PROBE]))
        assert store.counts == recount(store), step
        after = {s.target.name: s.status for s in store}
        assert (store.version != before_version) == (after != before), (step, action)
    assert sum(store.counts.values()) == len(store)


def test_health_since_survives_flapping_and_errors_are_a_small_ring() -> None:
    store = Store()
    state = connected(add(store, "node"))
    state.health_since = 100.0  # connected since then
    state.record_pong(0.001, 1.0)
    assert state.health_since == 100.0
    state.record_disconnected()
    broken_since = state.health_since
    assert broken_since > 100.0
    for _ in range(5):  # reconnecting in vain: still the same outage
        state.record_connecting()
        state.record_failure(Reason.REFUSED, "connect failed")
        state.record_disconnected()
    assert state.health_since == broken_since
    for i in range(RECENT_ERRORS + 5):
        state.record_failure(Reason.CLOSED, f"error {i}")
    errors = state.recent_errors()
    assert len(errors) == RECENT_ERRORS
    assert [e.message for e in errors[:2]] == [f"error {RECENT_ERRORS + 4}", f"error {RECENT_ERRORS + 3}"]
    assert state.last_error == errors[0]


def test_changed_since_counts_targets_whose_health_changed() -> None:
    store = Store()
    a, b, c = (connected(add(store, n)) for n in "abc")
    version = store.version
    assert store.changed_since(version) == 0
    a.record_disconnected()
    a.record_connecting()  # still broken: the same change
    a.record_disconnected()
    b.record_disconnected()
    b.record_connecting()
    b.record_connected(0.001)  # back: b changed twice, one target
    assert store.changed_since(version) == 2
    version = store.version
    c.paused = True
    add(store, "d", Mode.PROBE)
    store.remove("a")
    assert store.changed_since(version) == 3
    assert store.changed_since(store.version + 5) == 0


def test_changed_since_too_long_ago_is_unknown(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(store_module, "HEALTH_LOG", 8)
    store = Store()
    states = [connected(add(store, f"t{i}")) for i in range(4)]
    version = store.version
    for state in states:
        state.record_disconnected()
    assert store.changed_since(version) == 4
    for state in states:
        state.record_connecting()
        state.record_connected(0.001)
    assert store.changed_since(version) is None  # the log forgot the first changes
    assert store.changed_since(store.version - 1) == 1


def test_a_removed_state_changes_nothing_any_more() -> None:
    store = Store()
    state = connected(add(store, "gone"))
    store.remove("gone")
    version, counts = store.version, dict(store.counts)
    state.record_disconnected()  # its runner has not heard yet
    assert (store.version, store.counts) == (version, counts)
    replaced = add(store, "x")
    add(store, "x")  # the same name again (a reload changed it): one target
    assert len(store) == 1 and sum(store.counts.values()) == 1
    replaced.record_connecting()
    assert store.counts[Status.CONNECTING] == 0


# --- queries ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("", Query()),
        ("q=EU%20eth&status=down,disconnected&sort=latency&limit=500&offset=10", None),
        ("status=problems", Query(statuses=frozenset({Status.DOWN, Status.DISCONNECTED, Status.CONNECTING}))),
        ("status=up&status=down", Query(statuses=frozenset({Status.UP, Status.DOWN}))),
        ("status=all&q=&limit=&sort=", Query()),
    ],
)
def test_good_queries(query: str, expected: Query | None) -> None:
    parsed = parse_query(QueryParams(query))
    if expected is None:
        assert parsed.terms == ("eu", "eth")
        assert parsed.statuses == frozenset({Status.DOWN, Status.DISCONNECTED})
        assert (parsed.sort, parsed.limit, parsed.offset) == ("latency", 500, 10)
    else:
        assert parsed == expected


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("stat=down", "unknown parameter 'stat': use q, status, sort, limit or offset"),
        (
            "status=sideways",
            "unknown status 'sideways': use connected, connecting, disconnected, up, down, pending, paused or problems",
        ),
        ("sort=colour", "unknown sort 'colour': use problems, name or latency"),
        ("limit=0", "limit must be a whole number from 1 to 500, not '0'"),
        ("limit=501", "limit must be a whole number from 1 to 500, not '501'"),
        ("limit=ten", "limit must be a whole number from 1 to 500, not 'ten'"),
        ("offset=-1", "offset must be a whole number 0 or more, not '-1'"),
        ("offset=%C2%B2", "offset must be a whole number 0 or more, not '²'"),
        ("limit=5&limit=6", "limit is given 2 times: give it once"),
        ("q=" + "x" * 257, "q is longer than 256 characters"),
    ],
)
def test_bad_queries_say_what_is_wrong_in_one_line(query: str, message: str) -> None:
    with pytest.raises(QueryError) as caught:
        parse_query(QueryParams(query))
    assert str(caught.value) == message


def fleet_of_all_kinds() -> tuple[Store, Fleet]:
    store = Store()
    connected(add(store, "zeta", region="eu"), rtt=0.030)
    connected(add(store, "alpha", region="us"), rtt=0.010)
    add(store, "mid-down", region="eu").record_disconnected()  # never connected: disconnected
    add(store, "new-probe", Mode.PROBE)  # pending
    add(store, "probe-up", Mode.PROBE, region="eu").record_probe(probed(True, 0.050), 1000.0)
    add(store, "a-down", Mode.PROBE).record_probe(probed(False), 1000.0)
    paused = connected(add(store, "b-paused"))
    paused.paused = True
    connecting = add(store, "c-connecting")
    connecting.record_connecting()
    return store, Fleet(store)


def names(states: list[TargetState]) -> list[str]:
    return [s.target.name for s in states]


def test_problems_first_then_pending_paused_working_by_name() -> None:
    _, fleet = fleet_of_all_kinds()
    assert names(fleet.matching(Query())) == [
        "a-down",
        "c-connecting",
        "mid-down",
        "new-probe",
        "b-paused",
        "alpha",
        "probe-up",
        "zeta",
    ]
    assert names(fleet.matching(Query(sort="name")))[:3] == ["a-down", "alpha", "b-paused"]
    latency = names(fleet.matching(Query(sort="latency")))
    assert latency[:3] == ["probe-up", "zeta", "alpha"]  # slowest first; no latency now: last
    assert names(fleet.matching(Query(statuses=frozenset({Status.DISCONNECTED, Status.UP})))) == [
        "mid-down",
        "probe-up",
    ]


def test_search_every_word_in_name_labels_or_redacted_url() -> None:
    _, fleet = fleet_of_all_kinds()
    assert names(fleet.matching(Query(terms=("eu",)))) == ["mid-down", "probe-up", "zeta"]
    assert names(fleet.matching(Query(terms=("region=eu", "probe")))) == ["probe-up"]
    assert names(fleet.matching(Query(terms=("zeta.example:8546",)))) == ["zeta"]
    assert fleet.matching(Query(terms=("s3cret",))) == []  # the token is not in the redacted URL


def test_orders_are_kept_until_a_status_changes() -> None:
    store, fleet = fleet_of_all_kinds()
    query = Query(terms=("eu",))
    first = fleet.matching(query)
    state = store.get("zeta")
    assert state is not None
    state.record_pong(0.020, 1001.0)  # latency is not status: the same answer, not made again
    assert fleet.matching(query) is first
    assert fleet.matching(Query()) is fleet.matching(Query())
    state.record_disconnected()
    assert names(fleet.matching(query)) == ["mid-down", "zeta", "probe-up"]


def test_summary_counts_latency_and_worst_offenders() -> None:
    store, fleet = fleet_of_all_kinds()
    down = store.get("a-down")
    assert down is not None
    down.health_since -= 60  # broken the longest
    summary = fleet.summary(since=None)
    assert summary["counts"] == {
        "total": 8,
        "connected": 2,
        "connecting": 1,
        "disconnected": 1,
        "up": 1,
        "down": 1,
        "pending": 1,
        "paused": 1,
    }
    assert summary["problems"] == 3
    assert summary["latency"] == {"targets": 3, "p50_ms": 30.0, "p99_ms": 50.0}
    assert [w["name"] for w in summary["worst"]] == ["a-down", "mid-down", "c-connecting"]
    assert summary["worst"][0]["last_error"]["reason"] == "refused"
    assert summary["worst"][0]["url"] == "ws://a-down.example:8546/****"
    assert "changed" not in summary
    assert fleet.summary(since=store.version)["changed"] == 0


@pytest.mark.parametrize(
    ("header", "matches"),
    [
        (None, False),
        ("", False),
        ('W/"abc"', True),
        ('"abc"', True),  # weak comparison
        ('W/"x", W/"abc"', True),
        ("*", True),
        ('W/"abcd"', False),
    ],
)
def test_if_none_match(header: str | None, matches: bool) -> None:
    assert etag_matches(header, 'W/"abc"') is matches
