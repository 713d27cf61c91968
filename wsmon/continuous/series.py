"""The Store as metric series, built fresh at every scrape (or push) from stored state.

Per target: the ``probe_*`` series of the latest result, counts by result and reason,
cumulative latency histograms, rolling-window quantiles, and for persistent targets the
connection state, reconnects and subscription figures. Every series carries ``target`` (the
configured name, never the URL) and the target's own labels.

Rendering 10,000 targets is ~500,000 lines: ``render_store`` writes text directly and gives
the event loop a turn between chunks of targets, so pings and probes are not held up by a
scrape or a push.
"""

from __future__ import annotations

import asyncio
from time import perf_counter

from wsmon.config.file import Mode
from wsmon.continuous.store import ConnectionState, Store, TargetState
from wsmon.metrics.probe_series import PROBE_FAMILIES, write_connection, write_result
from wsmon.metrics.sinks import Families, Sink, TextSink

__all__ = ["TARGET_FAMILIES", "WINDOW_QUANTILES", "render_store", "write_target"]

WINDOW_QUANTILES = (0.0, 0.5, 0.9, 0.99, 1.0)
_QUANTILE_LABELS = tuple((("quantile", repr(q)),) for q in WINDOW_QUANTILES)
_STATE_LABELS = tuple((s, (("state", str(s)),)) for s in ConnectionState)
_CHUNK = 250  # targets rendered between two turns of the event loop

TARGET_FAMILIES: Families = {
    **PROBE_FAMILIES,
    "wsmon_probes": ("counter", "Probes (or persistent pings) done, by result and failure reason"),
    "wsmon_connect_duration_seconds": ("histogram", "Connection establishment (TCP, TLS and upgrade)"),
    "wsmon_ping_pong_duration_seconds": ("histogram", "Ping to pong round trips"),
    "wsmon_ping_pong_window_seconds": (
        "gauge",
        "Ping-pong round trips over the rolling window: quantile 0 is the minimum, 1 the maximum",
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
        )
    elif state.latest is not None:
        write_result(sink, state.latest, ping_enabled=target.module.ping)
    put("wsmon_probes", state.pings_ok, (("result", "success"), ("reason", "none")))
    for reason, count in list(state.failures.items()):
        put("wsmon_probes", count, (("result", "failure"), ("reason", str(reason))))
    sink.histogram("wsmon_connect_duration_seconds", state.connect_histogram)
    if target.module.ping:
        sink.histogram("wsmon_ping_pong_duration_seconds", state.ping_histogram)
        quantiles = state.window.quantiles(now, WINDOW_QUANTILES)
        if quantiles is not None:
            for labels, value in zip(_QUANTILE_LABELS, quantiles, strict=True):
                put("wsmon_ping_pong_window_seconds", value, labels)
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


async def render_store(store: Store) -> bytes:
    """Every target's series as text format 0.0.4, yielding to the event loop as it goes."""
    sink = TextSink(TARGET_FAMILIES)
    for index, state in enumerate(store):
        if index and index % _CHUNK == 0:
            await asyncio.sleep(0)
        write_target(sink, state, perf_counter())
    return sink.render()
