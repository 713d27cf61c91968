"""The fleet as the dashboard reads it, cheap at 10,000 targets: a page of targets (searched,
filtered by status, problems first) and a summary (counts, fleet latency, worst offenders).

A request builds the views of its page's rows only. What depends on every target is kept
between requests and made again only when it has changed: the problems-first order and the
targets by health when the Store's ``version`` moves (a status change, an addition, a removal);
a search's matches while the query and that version stay the same; the fleet's latency
figures at most once a second. Counts by status are the Store's own, kept as statuses change.

The order, "problems first": broken (down, disconnected, connecting), then pending, paused,
working (connected, up); by name within each. A target that flaps between disconnected and
connecting keeps its place.
"""

from __future__ import annotations

import hashlib
import heapq
import os
import time
from collections.abc import Iterable
from dataclasses import dataclass
from operator import attrgetter
from typing import Any

from starlette.datastructures import QueryParams

from wsmon.continuous.store import HEALTH, Health, Status, Store, TargetState
from wsmon.continuous.window import quantile
from wsmon.redact import redact_url
from wsmon.web.views import error_view, milliseconds

__all__ = ["DEFAULT_LIMIT", "MAX_LIMIT", "Fleet", "Query", "QueryError", "etag_matches", "etag_of", "parse_query"]

DEFAULT_LIMIT = 50
MAX_LIMIT = 500
MAX_QUERY = 256  # characters of a search
WORST = 5  # worst offenders in the summary
SORTS = ("problems", "name", "latency")
PROBLEMS = frozenset(s for s, h in HEALTH.items() if h is Health.BROKEN)
_RANKED = (Health.BROKEN, Health.PENDING, Health.PAUSED, Health.OK)
_RANK = {status: _RANKED.index(health) for status, health in HEALTH.items()}
_LAST_RTT = attrgetter("last_rtt")
_PARAMS = ("q", "status", "sort", "limit", "offset")
_LATENCY_TTL = 1.0  # seconds the fleet's latency figures are reused
_EXPIRY_EPOCH = 10.0  # seconds: a page's tag changes at least this often (window samples expire)
_MATCH_CACHE = 16  # searches remembered
_PROCESS_KEY = os.urandom(16)  # of the entity tags


class QueryError(ValueError):
    """A bad query parameter; the message is the API's one-line answer."""


@dataclass(frozen=True, slots=True)
class Query:
    terms: tuple[str, ...] = ()  # lower-case words, each found in the name, a label or the URL
    statuses: frozenset[Status] | None = None  # None: every status
    sort: str = "problems"
    limit: int = DEFAULT_LIMIT
    offset: int = 0

    @property
    def key(self) -> tuple[Any, ...]:
        """What decides which targets match, and in which order."""
        return self.terms, None if self.statuses is None else tuple(sorted(self.statuses)), self.sort


def parse_query(params: QueryParams) -> Query:
    """``q``, ``status`` (comma-separated or repeated; ``problems`` for all broken ones),
    ``sort``, ``limit``, ``offset``; QueryError for anything else or out of bounds."""
    given: dict[str, list[str]] = {}
    for name, value in params.multi_items():
        if name not in _PARAMS:
            raise QueryError(f"unknown parameter {name[:40]!r}: use {_either(_PARAMS)}")
        given.setdefault(name, []).append(value)
    for name, values in given.items():
        if len(values) > 1 and name != "status":
            raise QueryError(f"{name} is given {len(values)} times: give it once")
    one = {name: values[0] for name, values in given.items()}
    q = one.get("q", "")
    if len(q) > MAX_QUERY:
        raise QueryError(f"q is longer than {MAX_QUERY} characters")
    sort = one.get("sort", "problems") or "problems"
    if sort not in SORTS:
        raise QueryError(f"unknown sort {sort[:40]!r}: use {_either(SORTS)}")
    return Query(
        terms=tuple(dict.fromkeys(q.lower().split())),
        statuses=_statuses(given.get("status", [])),
        sort=sort,
        limit=_whole(one.get("limit"), "limit", DEFAULT_LIMIT, 1, MAX_LIMIT),
        offset=_whole(one.get("offset"), "offset", 0, 0, 10**9),
    )


def _statuses(values: list[str]) -> frozenset[Status] | None:
    chosen: set[Status] = set()
    for word in (w.strip().lower() for value in values for w in value.split(",")):
        if word in ("", "all"):
            continue
        if word == "problems":
            chosen |= PROBLEMS
            continue
        try:
            chosen.add(Status(word))
        except ValueError:
            raise QueryError(f"unknown status {word[:40]!r}: use {_either([*Status, 'problems'])}") from None
    return frozenset(chosen) or None


def _either(words: Iterable[str]) -> str:
    *most, last = words
    return f"{', '.join(most)} or {last}"


def _whole(text: str | None, name: str, default: int, low: int, high: int) -> int:
    if text is None or text == "":
        return default
    if not (text.isascii() and text.isdigit()) or not low <= int(text) <= high:
        where = f"from {low} to {high}" if high < 10**9 else f"{low} or more"
        raise QueryError(f"{name} must be a whole number {where}, not {text[:40]!r}")
    return int(text)


@dataclass(frozen=True, slots=True)
class _Card:
    """What a target shows that never changes while it exists: its redacted URL and the text
    a search looks in (computed once: redacting 10,000 URLs per request would not be cheap)."""

    target: object
    url: str
    text: str


@dataclass(frozen=True, slots=True)
class _Grouped:
    """The fleet at one Store version: in problems-first order, and by health."""

    version: int
    ordered: list[TargetState]
    by_health: dict[Health, list[TargetState]]
    worst: list[TargetState]


@dataclass(frozen=True, slots=True)
class _Latency:
    at: float  # monotonic
    targets: int
    p50: float | None
    p99: float | None


class Fleet:
    """The views of one Store that the dashboard asks for, with what they keep between requests."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self._cards: dict[str, _Card] = {}
        self._grouped: _Grouped | None = None
        self._matches: dict[tuple[Any, ...], list[TargetState]] = {}
        self._latency: _Latency | None = None
        self._texts: tuple[int, list[str]] = (-1, [])  # what a search looks in, as store.by_name()

    # --- per target ------------------------------------------------------------------------

    def card(self, state: TargetState) -> _Card:
        target = state.target
        card = self._cards.get(target.name)
        if card is None or card.target is not target:
            url = redact_url(target.url)  # as target.redacted_url, without validating it again
            labels = " ".join(f"{k}={v}" for k, v in target.labels)
            card = _Card(target, url, f"{target.name} {labels} {url}".lower())
            self._cards[target.name] = card
            if len(self._cards) > 2 * len(self.store) + 64:  # removed targets' cards
                self._cards = {n: c for n, c in self._cards.items() if self.store.get(n) is not None}
        return card

    def _search(self, terms: tuple[str, ...]) -> list[TargetState]:
        """The targets whose name, labels or redacted URL hold every term, by name."""
        states = self.store.by_name()
        members, texts = self._texts
        if members != self.store.members:
            card = self.card
            texts = [card(s).text for s in states]
            self._texts = (self.store.members, texts)
        if len(terms) == 1:
            (term,) = terms
            return [s for s, text in zip(states, texts, strict=True) if term in text]
        return [s for s, text in zip(states, texts, strict=True) if all(t in text for t in terms)]

    # --- pages -----------------------------------------------------------------------------

    def grouped(self) -> _Grouped:
        store = self.store
        grouped = self._grouped
        if grouped is None or grouped.version != store.version:
            by_health: dict[Health, list[TargetState]] = {h: [] for h in _RANKED}
            add = {status: by_health[health].append for status, health in HEALTH.items()}
            for state in store.by_name():  # 10,000 turns of this loop: one look-up each
                add[state.status](state)
            ordered = [state for health in _RANKED for state in by_health[health]]
            worst = heapq.nsmallest(WORST, by_health[Health.BROKEN], key=_health_since)
            grouped = self._grouped = _Grouped(store.version, ordered, by_health, worst)
        return grouped

    def matching(self, query: Query) -> list[TargetState]:
        """Every target the query matches, in its order (not to be changed: it is kept)."""
        grouped = self.grouped()
        # By latency, the order changes with every ping: kept for a second at most.
        tick = int(time.monotonic()) if query.sort == "latency" else 0
        key = (grouped.version, tick, *query.key)
        found = self._matches.get(key)
        if found is not None:
            return found
        states: list[TargetState]
        statuses = query.statuses
        if query.terms:
            states = self._search(query.terms)
            if statuses is not None:
                states = [s for s in states if s.status in statuses]
            if query.sort == "problems":
                states.sort(key=_rank)  # stable: by name within each rank
        elif query.sort != "problems":
            states = self.store.by_name()
            if statuses is not None:
                states = [s for s in states if s.status in statuses]
        elif statuses is None:
            states = grouped.ordered
        else:
            wanted = [grouped.by_health[h] for h in _RANKED if any(HEALTH[s] is h for s in statuses)]
            states = [s for group in wanted for s in group if s.status in statuses]
        if query.sort == "latency":
            states = _by_latency(states)
        if len(self._matches) >= _MATCH_CACHE:
            self._matches.clear()
        self._matches[key] = states  # shared, as the Store's lists are: read, never changed
        return states

    def page_tag(self, query: Query, rows: list[TargetState]) -> str:
        """The page's entity tag: what it shows changed, or its window samples may have expired."""
        parts = (self.store.version, query, int(time.monotonic() / _EXPIRY_EPOCH))
        return etag_of(repr((parts, [(s.target.name, s.revision) for s in rows])).encode())

    # --- the summary -----------------------------------------------------------------------

    def counts(self) -> dict[str, int]:
        counts = self.store.counts
        return {"total": len(self.store), **{str(s): counts[s] for s in Status}}

    def summary(self, since: int | None) -> dict[str, Any]:
        """Counts by status, the fleet's latency, the worst offenders, the changes since ``since``."""
        grouped = self.grouped()
        latency = self._fleet_latency(grouped)
        body: dict[str, Any] = {
            "version": self.store.version,
            "counts": self.counts(),
            "problems": len(grouped.by_health[Health.BROKEN]),
            "latency": {"targets": latency.targets, "p50_ms": _shown(latency.p50), "p99_ms": _shown(latency.p99)},
            "worst": [self._offender(s) for s in grouped.worst],
        }
        if since is not None:
            body["changed"] = self.store.changed_since(since)
        return body

    def _offender(self, state: TargetState) -> dict[str, Any]:
        target = state.target
        return {
            "name": target.name,
            "status": str(state.status),
            "since": state.health_since,
            "url": self.card(state).url,
            "labels": dict(target.labels),
            "last_error": error_view(state.last_error),
        }

    def _fleet_latency(self, grouped: _Grouped) -> _Latency:
        """The latest round trip of every working target: p50 and p99."""
        now = time.monotonic()
        latency = self._latency
        if latency is not None and now - latency.at < _LATENCY_TTL:
            return latency
        rtts = sorted([rtt for s in grouped.by_health[Health.OK] if (rtt := s.last_rtt) is not None])
        p50, p99 = (quantile(rtts, 0.5), quantile(rtts, 0.99)) if rtts else (None, None)
        self._latency = _Latency(now, len(rtts), p50, p99)
        return self._latency


def _shown(seconds: float | None) -> float | None:
    """Milliseconds to two significant digits: what a reader takes in, and a steady fleet's
    summary stays the same from one poll to the next (answered 304)."""
    value = milliseconds(seconds)
    return None if value is None else float(f"{value:.2g}")


def _health_since(state: TargetState) -> float:
    return state.health_since


def _rank(state: TargetState) -> int:
    return _RANK[state.status]


def _by_latency(states: list[TargetState]) -> list[TargetState]:
    """Working targets by their latest round trip, slowest first (by name among equals), then
    the others (no latency now) as they came."""
    timed: list[TargetState] = []
    untimed: list[TargetState] = []
    for state in states:
        (timed if state.last_rtt is not None and HEALTH[state.status] is Health.OK else untimed).append(state)
    timed.sort(key=_LAST_RTT, reverse=True)  # reverse keeps a sort stable
    return timed + untimed


def etag_of(data: bytes) -> str:
    """A weak entity tag: the same JSON but for ``updated_at`` is the same representation.

    Keyed per process: versions and revisions start again at a restart, and a page's tag from
    before it must not match what the new process shows."""
    return 'W/"' + hashlib.blake2b(data, digest_size=12, key=_PROCESS_KEY).hexdigest() + '"'


def etag_matches(if_none_match: str | None, tag: str) -> bool:
    """Whether an ``If-None-Match`` header names ``tag`` (compared weakly, as RFC 9110 says)."""
    if not if_none_match:
        return False
    bare = tag.removeprefix("W/")
    return any(
        candidate == "*" or candidate.removeprefix("W/") == bare
        for candidate in (part.strip() for part in if_none_match.split(","))
    )
