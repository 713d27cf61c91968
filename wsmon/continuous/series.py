"""The Store as metric series, built fresh at every scrape (or push) from stored state.

Per target: the ``probe_*`` series of the latest result, counts by result and reason,
cumulative latency histograms, the rolling window's quantiles (a summary), and for persistent
targets the connection state, reconnects and subscription figures. Every series carries
``target`` (the configured name, never the URL) and the target's own labels. Which of them a
target exports is its series budget (``wsmon.config.series``).

Written two ways, held to the same text by the tests:

- ``write_target``: one target through a ``Sink`` (``wsmon.metrics.sinks``), the plain definition,
  for ``MetricSink``, and through ``TextSink`` the tests' reference (how the text was written
  before it was streamed).
- ``stream_store``: the whole Store as text format 0.0.4, for ``/metrics`` and push. 10,000
  persistent targets are ~500,000 lines (35 MB), and every moment the event loop spends on them
  delays pings. The text format wants each family's samples together, so the text is written a
  family at a time over every target (a "column"), in chunks of ~64 KB handed out as they are
  written: memory stays at one chunk, and the loop gets a turn between chunks. Each column
  writes one target's lines of its family straight from the state, with the constant parts of
  each line (names, fixed labels) written into the code and the target's labels rendered once
  per scrape. A target's families are read as the columns reach it, so two of its series may
  be a ping apart, as with any collector; a probe-mode target's ``probe_*`` series all come
  from the same probe.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from functools import lru_cache, partial
from itertools import islice
from time import perf_counter

from wsmon.config.file import Mode
from wsmon.continuous.store import ConnectionState, Store, TargetState
from wsmon.metrics.probe_series import PROBE_FAMILIES, blackbox_phases, write_connection, write_result
from wsmon.metrics.remote_write import RemoteWriteSink
from wsmon.metrics.sinks import Families, Labels, Sink, format_value, histogram_text, label_text
from wsmon.probe.reasons import Reason
from wsmon.probe.result import PingStats, ProbeResult

__all__ = [
    "TARGET_FAMILIES",
    "remote_write_body",
    "render_store",
    "stream_store",
    "text_chunks",
    "write_target",
]

_STATE_LABELS = tuple((s, (("state", str(s)),)) for s in ConnectionState)

TARGET_FAMILIES: Families = {
    **PROBE_FAMILIES,
    "wsmon_probes": ("counter", "Probes (or persistent pings) done, by result and failure reason"),
    "wsmon_connect_duration_seconds": ("histogram", "Connection establishment (TCP, TLS and upgrade)"),
    "wsmon_ping_pong_duration_seconds": ("histogram", "Ping to pong round trips"),
    "wsmon_ping_pong_window_seconds": (
        "summary",
        "Ping-pong round trips: quantiles over the rolling window, cut when the scrape began "
        "(0 is the minimum, 1 the maximum), sum and count since start",
    ),
    "wsmon_connection_state": ("gauge", "Persistent connection state: 1 for the current one"),
    "wsmon_reconnects": ("counter", "Persistent connections established again after the first"),
    "wsmon_connected_since_timestamp_seconds": ("gauge", "Unix time the current connection was established"),
    "wsmon_messages_received": ("counter", "Data messages received on a subscription"),
    "wsmon_last_message_timestamp_seconds": ("gauge", "Unix time of the latest message on a subscription"),
    "wsmon_message_value": ("gauge", "A number extracted from a message (e.g. the block height)"),
    "wsmon_message_value_changed_timestamp_seconds": ("gauge", "Unix time the extracted number last changed"),
}


def write_target(sink: Sink, state: TargetState, now: float) -> None:
    """All series of one target (``now``: perf_counter, for the rolling window)."""
    target = state.target
    sink.target(state.labels)
    put = sink.sample
    budget = target.series
    persistent = target.mode is Mode.PERSISTENT
    if persistent:
        write_connection(
            sink,
            up=state.state is ConnectionState.CONNECTED,
            connect_duration=state.last_connect,
            ping_enabled=target.module.ping,
            ping_ok=state.last_ping_ok,
            rtt=state.last_rtt,
            reason=None if state.last_error is None else str(state.last_error.reason),
            blackbox=budget.blackbox,
        )
    elif state.latest is not None:
        write_result(
            sink,
            state.latest,
            ping_enabled=target.module.ping,
            phases=budget.phases,
            details=budget.details,
            blackbox=budget.blackbox,
        )
    put("wsmon_probes", state.pings_ok, (("result", "success"), ("reason", "none")))
    for reason, count in list(state.failures.items()):
        put("wsmon_probes", count, (("result", "failure"), ("reason", str(reason))))
    if budget.histograms:
        sink.histogram("wsmon_connect_duration_seconds", state.connect_histogram)
        if target.module.ping:
            sink.histogram("wsmon_ping_pong_duration_seconds", state.ping_histogram)
    count = state.ping_histogram.count
    if target.module.ping and budget.quantiles and count:
        figures = state.window.quantiles(now, budget.quantiles) or ()
        labelled = list(zip(_quantile_values(budget.quantiles), figures, strict=False))  # none for an empty window
        sink.summary("wsmon_ping_pong_window_seconds", labelled, state.ping_histogram.sum, count)
    if persistent:
        current = state.state
        for s, labels in _STATE_LABELS:
            put("wsmon_connection_state", float(s is current), labels)
        put("wsmon_reconnects", state.reconnects)
        if state.connected_since is not None:
            put("wsmon_connected_since_timestamp_seconds", state.connected_since)
    if target.subscribe is not None:
        put("wsmon_messages_received", state.messages)
        if state.last_message_at is not None:
            put("wsmon_last_message_timestamp_seconds", state.last_message_at)
    for name, (value, changed_at) in list(state.values.items()):
        named = (("name", name),)
        put("wsmon_message_value", value, named)
        put("wsmon_message_value_changed_timestamp_seconds", changed_at, named)


# --- the streamed text ----------------------------------------------------------------------------
#
# A column writes one family's lines for one target: (state, latest result, labels in braces,
# labels opened for one more) → text, "" for none. The latest result is read once per scrape, so
# every probe_* series of a probe-mode target comes from the same probe.

Column = Callable[[TargetState, ProbeResult | None, str, str], str]

# Which targets a column is given: all, probe-mode ones with a result, persistent ones; and for
# the families most targets have no series of, only the targets that may: those whose budget
# asks for blackbox_exporter's names, those with a subscription, those with extracted values.
# Every target goes through each pass it is given (~0.2 µs even for no text): most fleets have
# none of the last three, whose passes then cost nothing.
_ALL, _PROBED, _CONNECTIONS, _BLACKBOX, _SUBSCRIBED, _VALUED = range(6)

_PERSISTENT = Mode.PERSISTENT
_CONNECTED = ConnectionState.CONNECTED
_FLAG = ("0.0", "1.0")  # format_value(float(flag)), indexed by the flag
_v = format_value


def _escaped(name: str, value: str) -> str:
    return label_text(((name, value),))


def _healthy(state: TargetState) -> bool:
    """A persistent connection's probe_success (``write_connection``'s rule)."""
    return state.state is _CONNECTED and (state.last_ping_ok or not state.target.module.ping)


# The seed gauges: persistent targets from their connection, probe-mode ones from their latest result.


def _success(state: TargetState, result: ProbeResult | None, b: str, o: str) -> str:
    if state.target.mode is _PERSISTENT:
        return f"probe_success{b} {_FLAG[_healthy(state)]}\n"
    return "" if result is None else f"probe_success{b} {_FLAG[result.success]}\n"


def _up_flag(state: TargetState, result: ProbeResult | None) -> str | None:
    """Whether the WebSocket is up, as text: a persistent target's connection, a probe's
    upgrade; None for a probe-mode target not probed yet."""
    if state.target.mode is _PERSISTENT:
        return _FLAG[state.state is _CONNECTED]
    return None if result is None else _FLAG[result.up]


def _up(state: TargetState, result: ProbeResult | None, b: str, o: str) -> str:
    flag = _up_flag(state, result)
    return "" if flag is None else f"probe_websocket_up{b} {flag}\n"


def _connection_duration(state: TargetState, result: ProbeResult | None, b: str, o: str) -> str:
    if state.target.mode is _PERSISTENT:
        seconds = state.last_connect
        if state.state is not _CONNECTED or seconds is None:
            return ""
    elif result is None or not result.up:
        return ""
    else:
        seconds = result.connect_duration
    return f"probe_websocket_connection_duration_seconds{b} {_v(seconds)}\n"


def _ping_success(state: TargetState, result: ProbeResult | None, b: str, o: str) -> str:
    if not state.target.module.ping:
        return ""
    if state.target.mode is _PERSISTENT:
        return f"probe_websocket_ping_pong_success{b} {_FLAG[state.state is _CONNECTED and state.last_ping_ok]}\n"
    return "" if result is None else f"probe_websocket_ping_pong_success{b} {_FLAG[result.ping_success]}\n"


def _ping_duration(state: TargetState, result: ProbeResult | None, b: str, o: str) -> str:
    if not state.target.module.ping:
        return ""
    if state.target.mode is _PERSISTENT:
        # A round trip of a connection that is gone is no news.
        rtt = state.last_rtt if state.state is _CONNECTED else None
    else:
        rtt = None if result is None else result.ping_rtt
    return "" if rtt is None else f"probe_websocket_ping_pong_duration_seconds{b} {_v(rtt)}\n"


def _failure_info(state: TargetState, result: ProbeResult | None, b: str, o: str) -> str:
    if state.target.mode is _PERSISTENT:
        error = state.last_error
        if error is None or _healthy(state):
            return ""
        reason = error.reason
    elif result is None or result.reason is None:
        return ""
    else:
        reason = result.reason
    return f"probe_websocket_failure_info{o}{_escaped('reason', str(reason))}}} 1.0\n"


# blackbox_exporter's names, for the targets whose budget asks for them.


def _upgraded(state: TargetState, result: ProbeResult | None, b: str, o: str) -> str:
    flag = _up_flag(state, result) if state.target.series.blackbox else None
    return "" if flag is None else f"probe_websocket_connection_upgraded{b} {flag}\n"


def _dns_lookup(state: TargetState, result: ProbeResult | None, b: str, o: str) -> str:
    if result is None or not state.target.series.blackbox or "resolve" not in result.phases:
        return ""
    return f"probe_dns_lookup_time_seconds{b} {_v(result.phases['resolve'])}\n"


# Only probe-mode targets have these (given only those with a result).


def _duration(state: TargetState, result: ProbeResult | None, b: str, o: str) -> str:
    return "" if result is None else f"probe_duration_seconds{b} {_v(result.duration)}\n"


def _phases(state: TargetState, result: ProbeResult | None, b: str, o: str) -> str:
    budget = state.target.series
    if result is None or not budget.phases:
        return ""
    phases = blackbox_phases(result.phases) if budget.blackbox else result.phases
    return "".join(
        f"probe_websocket_duration_seconds{o}{_escaped('phase', str(phase))}}} {_v(seconds)}\n"
        for phase, seconds in phases.items()
    )


def _status_code(state: TargetState, result: ProbeResult | None, b: str, o: str) -> str:
    if result is None or result.status_code is None:
        return ""
    return f"probe_websocket_status_code{b} {_v(result.status_code)}\n"


def _timeout(state: TargetState, result: ProbeResult | None, b: str, o: str) -> str:
    return "" if result is None else f"probe_timeout_seconds{b} {_v(result.timeout)}\n"


def _ip_protocol(state: TargetState, result: ProbeResult | None, b: str, o: str) -> str:
    if result is None or result.ip_protocol is None:
        return ""
    return f"probe_ip_protocol{b} {_v(result.ip_protocol)}\n"


def _cert_expiry(state: TargetState, result: ProbeResult | None, b: str, o: str) -> str:
    if result is None or result.cert_expiry is None:
        return ""
    return f"probe_ssl_earliest_cert_expiry{b} {_v(result.cert_expiry)}\n"


def _tls_version(state: TargetState, result: ProbeResult | None, b: str, o: str) -> str:
    if result is None or result.tls_version is None:
        return ""
    return f"probe_tls_version_info{o}{_escaped('version', result.tls_version)}}} 1.0\n"


def _ping_stat(family: str, figure: Callable[[PingStats], float], *, needs_rtts: bool) -> tuple[str, int, Column]:
    """A multi-ping figure's column: only for probes that sent more than one ping (and got a pong
    back, with ``needs_rtts``)."""

    def column(state: TargetState, result: ProbeResult | None, b: str, o: str) -> str:
        ping = None if result is None else result.ping
        if ping is None or ping.sent <= 1 or (needs_rtts and not ping.rtts):
            return ""
        return f"{family}{b} {_v(figure(ping))}\n"

    return family, _PROBED, _detail(column)


def _detail(column: Column) -> Column:
    """``column`` for targets whose budget has the per-probe details, nothing for the others."""

    def budgeted(state: TargetState, result: ProbeResult | None, b: str, o: str) -> str:
        return column(state, result, b, o) if state.target.series.details else ""

    return budgeted


def _steps_success(state: TargetState, result: ProbeResult | None, b: str, o: str) -> str:
    if result is None:
        return ""
    return "".join(
        f"probe_websocket_message_success{o}{_escaped('step', str(step.index + 1))}}} {_FLAG[step.success]}\n"
        for step in result.steps
    )


def _steps_duration(state: TargetState, result: ProbeResult | None, b: str, o: str) -> str:
    if result is None:
        return ""
    return "".join(
        f"probe_websocket_message_duration_seconds{o}{_escaped('step', str(step.index + 1))}}} {_v(step.duration)}\n"
        for step in result.steps
    )


def _steps_regex(state: TargetState, result: ProbeResult | None, b: str, o: str) -> str:
    if result is None or not result.steps:
        return ""
    failed = any(step.failed_due_to_regex for step in result.steps)
    return f"probe_websocket_failed_due_to_regex{b} {_FLAG[failed]}\n"


def _steps_value(state: TargetState, result: ProbeResult | None, b: str, o: str) -> str:
    if result is None:
        return ""
    return "".join(
        f"probe_websocket_message_value{o}{_escaped('name', step.value_name)}}} {_v(step.value)}\n"
        for step in result.steps
        if step.value is not None and step.value_name is not None
    )


# wsmon's own series of every target.

_SUCCESSES = 'result="success",reason="none"} '
_FAILURES = {reason: f"{label_text((('result', 'failure'), ('reason', str(reason))))}}} " for reason in Reason}


def _probes(state: TargetState, result: ProbeResult | None, b: str, o: str) -> str:
    text = f"wsmon_probes_total{o}{_SUCCESSES}{_v(state.pings_ok)}\n"
    for reason, count in state.failures.items():
        text += f"wsmon_probes_total{o}{_FAILURES[reason]}{_v(count)}\n"
    return text


def _connect_histogram(state: TargetState, result: ProbeResult | None, b: str, o: str) -> str:
    if not state.target.series.histograms:
        return ""
    return histogram_text("wsmon_connect_duration_seconds", state.connect_histogram, b, o)


def _ping_histogram(state: TargetState, result: ProbeResult | None, b: str, o: str) -> str:
    target = state.target
    if not (target.module.ping and target.series.histograms):
        return ""
    return histogram_text("wsmon_ping_pong_duration_seconds", state.ping_histogram, b, o)


@lru_cache(maxsize=64)
def _quantile_values(qs: tuple[float, ...]) -> tuple[str, ...]:
    """The ``quantile`` label's values for ``qs`` (a budget's, so a handful over a config)."""
    return tuple(repr(q) for q in qs)


@lru_cache(maxsize=64)
def _quantile_tails(qs: tuple[float, ...]) -> tuple[str, ...]:
    """What follows the target's labels in each quantile's line, up to the value."""
    return tuple(f"{_escaped('quantile', q)}}} " for q in _quantile_values(qs))


def _window(state: TargetState, result: ProbeResult | None, b: str, o: str, now: float | None = None) -> str:
    """The window's quantiles (when it holds samples), and the sum and count of every round trip
    since start (a summary's, as client libraries keep them): none before the first pong.

    ``now``: where the window is cut, the scrape's start (``text_chunks`` passes it), so that
    every window of a scrape is cut at the same moment however long the scrape takes."""
    target = state.target
    qs = target.series.quantiles
    histogram = state.ping_histogram
    count = histogram.count
    if not (qs and target.module.ping and count):
        return ""
    figures = state.window.quantiles(perf_counter() if now is None else now, qs) or ()
    head = f"wsmon_ping_pong_window_seconds{o}"
    lines = [f"{head}{tail}{_v(value)}\n" for tail, value in zip(_quantile_tails(qs), figures, strict=False)]
    lines.append(
        f"wsmon_ping_pong_window_seconds_sum{b} {_v(histogram.sum)}\nwsmon_ping_pong_window_seconds_count{b} {count}\n"
    )
    return "".join(lines)


# Each state's three lines after the labels (one-hot), by the current state.
_STATE_LINES = {
    current: tuple(f"{label_text(labels)}}} {_FLAG[s is current]}\n" for s, labels in _STATE_LABELS)
    for current in ConnectionState
}


def _connection_state(state: TargetState, result: ProbeResult | None, b: str, o: str) -> str:
    head = f"wsmon_connection_state{o}"
    return head + head.join(_STATE_LINES[state.state])


def _reconnects(state: TargetState, result: ProbeResult | None, b: str, o: str) -> str:
    return f"wsmon_reconnects_total{b} {_v(state.reconnects)}\n"


def _connected_since(state: TargetState, result: ProbeResult | None, b: str, o: str) -> str:
    since = state.connected_since
    return "" if since is None else f"wsmon_connected_since_timestamp_seconds{b} {_v(since)}\n"


def _messages(state: TargetState, result: ProbeResult | None, b: str, o: str) -> str:
    if state.target.subscribe is None:
        return ""
    return f"wsmon_messages_received_total{b} {_v(state.messages)}\n"


def _last_message(state: TargetState, result: ProbeResult | None, b: str, o: str) -> str:
    at = state.last_message_at
    if state.target.subscribe is None or at is None:
        return ""
    return f"wsmon_last_message_timestamp_seconds{b} {_v(at)}\n"


def _values(state: TargetState, result: ProbeResult | None, b: str, o: str) -> str:
    if not state.values:
        return ""
    return "".join(
        f"wsmon_message_value{o}{_escaped('name', name)}}} {_v(value)}\n" for name, (value, _) in state.values.items()
    )


def _values_changed(state: TargetState, result: ProbeResult | None, b: str, o: str) -> str:
    if not state.values:
        return ""
    return "".join(
        f"wsmon_message_value_changed_timestamp_seconds{o}{_escaped('name', name)}}} {_v(at)}\n"
        for name, (_, at) in state.values.items()
    )


# Every family of TARGET_FAMILIES, in its order.
_COLUMNS: tuple[tuple[str, int, Column], ...] = (
    ("probe_success", _ALL, _success),
    ("probe_duration_seconds", _PROBED, _duration),
    ("probe_websocket_up", _ALL, _up),
    ("probe_websocket_connection_duration_seconds", _ALL, _connection_duration),
    ("probe_websocket_ping_pong_success", _ALL, _ping_success),
    ("probe_websocket_ping_pong_duration_seconds", _ALL, _ping_duration),
    ("probe_websocket_connection_upgraded", _BLACKBOX, _upgraded),
    ("probe_dns_lookup_time_seconds", _PROBED, _dns_lookup),
    ("probe_websocket_duration_seconds", _PROBED, _phases),
    ("probe_websocket_status_code", _PROBED, _detail(_status_code)),
    ("probe_websocket_failure_info", _ALL, _failure_info),
    ("probe_timeout_seconds", _PROBED, _detail(_timeout)),
    ("probe_ip_protocol", _PROBED, _detail(_ip_protocol)),
    ("probe_ssl_earliest_cert_expiry", _PROBED, _detail(_cert_expiry)),
    ("probe_tls_version_info", _PROBED, _detail(_tls_version)),
    _ping_stat("probe_websocket_ping_pong_sent", lambda p: p.sent, needs_rtts=False),
    _ping_stat("probe_websocket_ping_pong_min_seconds", lambda p: p.min, needs_rtts=True),
    _ping_stat("probe_websocket_ping_pong_avg_seconds", lambda p: p.avg, needs_rtts=True),
    _ping_stat("probe_websocket_ping_pong_max_seconds", lambda p: p.max, needs_rtts=True),
    _ping_stat("probe_websocket_ping_pong_jitter_seconds", lambda p: p.jitter, needs_rtts=True),
    _ping_stat("probe_websocket_ping_pong_loss_ratio", lambda p: p.loss_ratio, needs_rtts=False),
    ("probe_websocket_message_success", _PROBED, _detail(_steps_success)),
    ("probe_websocket_message_duration_seconds", _PROBED, _detail(_steps_duration)),
    ("probe_websocket_failed_due_to_regex", _PROBED, _detail(_steps_regex)),
    ("probe_websocket_message_value", _PROBED, _detail(_steps_value)),
    ("wsmon_probes", _ALL, _probes),
    ("wsmon_connect_duration_seconds", _ALL, _connect_histogram),
    ("wsmon_ping_pong_duration_seconds", _ALL, _ping_histogram),
    ("wsmon_ping_pong_window_seconds", _ALL, _window),
    ("wsmon_connection_state", _CONNECTIONS, _connection_state),
    ("wsmon_reconnects", _CONNECTIONS, _reconnects),
    ("wsmon_connected_since_timestamp_seconds", _CONNECTIONS, _connected_since),
    ("wsmon_messages_received", _SUBSCRIBED, _messages),
    ("wsmon_last_message_timestamp_seconds", _SUBSCRIBED, _last_message),
    ("wsmon_message_value", _VALUED, _values),
    ("wsmon_message_value_changed_timestamp_seconds", _VALUED, _values_changed),
)
assert tuple(family for family, _, _ in _COLUMNS) == tuple(TARGET_FAMILIES), "a family without its column"


def _header(family: str) -> str:
    kind, doc = TARGET_FAMILIES[family]
    shown = f"{family}_total" if kind == "counter" else family  # 0.0.4 names a counter as its samples
    return f"# HELP {shown} {doc}\n# TYPE {shown} {kind}\n"


_PASSES = tuple((_header(family), kind, column) for family, kind, column in _COLUMNS)

# At 10,000 persistent targets: ~500 chunks, the longest turn 2-3 ms of CPU (bench/render_cpu.py);
# a turn costs ~10 µs, so turns much shorter would cost more than they give.
CHUNK_BYTES = 64 * 1024  # text handed out at a time: what a scrape holds, beyond its list of targets
BLOCK = 32  # targets a column writes between two looks at the chunk's size and the clock (≤ ~1 ms)
TURN = 0.001  # seconds of writing after which the loop gets a turn even if the chunk is not full
_clock = perf_counter  # for TURN (the tests stop ``perf_counter``, the window's clock)


class _Rows:
    """The targets a column is given, with the latest result (probe mode), read once per scrape.

    Parallel lists, not a tuple per target: 10,000 tuples holding a state outlive a few
    collections during a scrape, get promoted to the oldest generation and bring its next
    (full) collection closer.
    """

    __slots__ = ("results", "states")

    def __init__(self) -> None:
        self.states: list[TargetState] = []
        self.results: list[ProbeResult | None] = []

    def add(self, state: TargetState, result: ProbeResult | None) -> None:
        self.states.append(state)
        self.results.append(result)

    def blocks(self) -> Iterator[Iterator[tuple[TargetState, ProbeResult | None]]]:
        """The rows, ``BLOCK`` at a time."""
        rows = zip(self.states, self.results, strict=True)
        for _ in range(0, len(self.states), BLOCK):
            yield islice(rows, BLOCK)


def text_chunks(states: Sequence[TargetState], now: float | None = None) -> Iterator[str]:
    """The targets' series as text format 0.0.4, in pieces of at most about ``CHUNK_BYTES``.

    Every rolling window is cut at ``now`` (perf_counter; by default, when the call starts): one
    moment for the whole scrape, as a push's windows are, not the moment each target's turn
    comes a second later. The pongs that come meanwhile are in, as they are in the counts.

    A piece ends when it is that big or when ``TURN`` has passed since the last one: a column
    that writes slowly (the window's quantiles: a sort per target) hands control back as often
    as one that writes fast. A piece may be empty: no text yet, but time for the loop to have a
    turn. The states are read as each column reaches them; a target added meanwhile waits for
    the next scrape, one removed meanwhile is still written. So does a target's first extracted
    value if it comes meanwhile: the values' families are given the targets that had values
    when the scrape began.
    """
    cut = partial(_window, now=perf_counter() if now is None else now)
    rows_by_kind = tuple(_Rows() for _ in range(_VALUED + 1))
    every, probed, connections, blackbox, subscribed, valued = rows_by_kind
    since = _clock()
    for start in range(0, len(states), BLOCK):
        for state in states[start : start + BLOCK]:
            target = state.target
            result = None if target.mode is _PERSISTENT else state.latest
            every.add(state, result)
            if result is not None:
                probed.add(state, result)
            elif target.mode is _PERSISTENT:
                connections.add(state, result)
            if target.series.blackbox:
                blackbox.add(state, result)
            if target.subscribe is not None:
                subscribed.add(state, result)
            if state.values:
                valued.add(state, result)
        if _clock() - since >= TURN:
            yield ""
            since = _clock()
    pending: list[str] = []
    size = 0
    for header, kind, column in _PASSES:
        write = cut if column is _window else column
        headed = False
        for block in rows_by_kind[kind].blocks():
            # A block's lines joined at once: a test, an append and a length per target cost as
            # much as a cheap column's own work, and every target goes through ~20 passes.
            text = "".join([write(state, result, state.braced, state.opened) for state, result in block])
            if text:
                if not headed:
                    pending.append(header)
                    headed = True
                pending.append(text)
                size += len(text)
            if size >= CHUNK_BYTES or _clock() - since >= TURN:
                yield "".join(pending)
                pending.clear()
                size = 0
                since = _clock()
    if pending:
        yield "".join(pending)


async def stream_store(store: Store, now: float | None = None) -> AsyncIterator[bytes]:
    """Every target's series as text format 0.0.4, in chunks, the event loop getting a turn
    between chunks (a ping due, a pong arriving, waits for one chunk, not for the scrape).
    Every window is cut at ``now`` (see ``text_chunks``)."""
    for text in text_chunks(list(store), now):
        if text:
            yield text.encode()
        await asyncio.sleep(0)


async def render_store(store: Store) -> bytes:
    """``stream_store``, whole (tests and small stores)."""
    return b"".join([chunk async for chunk in stream_store(store)])


# Targets encoded for remote write between two turns of the event loop: ~50 series each at
# ~2.5 µs a series is ~1 ms a batch of 8 (measured with bench/remote_write_encode.py).
_REMOTE_WRITE_BATCH = 8


async def remote_write_body(store: Store, timestamp_ms: int, extra: Labels) -> tuple[bytes, int]:
    """Every target's series as a snappy-compressed remote write ``WriteRequest`` and its size
    before compression, ``extra`` labels on each, the event loop getting a turn between batches."""
    sink = RemoteWriteSink(TARGET_FAMILIES, timestamp_ms, extra)
    now = perf_counter()
    for index, state in enumerate(store):  # the Store iterates over a copy of its targets
        if index and index % _REMOTE_WRITE_BATCH == 0:
            await asyncio.sleep(0)
        write_target(sink, state, now)
    return await asyncio.to_thread(sink.body), sink.size
