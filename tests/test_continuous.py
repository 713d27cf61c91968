"""Continuous mode against real local servers: persistent and probe-mode targets, reconnects,
reload, and a clean shutdown."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from time import perf_counter
from typing import Any

import pytest
from prometheus_client.exposition import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from tests import servers
from tests.servers import MS, Peer, Server, go_duration, threaded
from wsmon.config.file import load_config, parse_config
from wsmon.config.live import LiveConfig
from wsmon.continuous.monitor import Monitor
from wsmon.continuous.persistent import PersistentTarget
from wsmon.continuous.series import TARGET_FAMILIES, write_target
from wsmon.continuous.store import ConnectionState
from wsmon.metrics.exporter import ExporterMetrics
from wsmon.metrics.sinks import TextSink
from wsmon.probe.reasons import Reason


@dataclass
class Readings:
    """What /metrics would show: the exporter's registry and every target's series."""

    monitor: Monitor
    metrics: ExporterMetrics

    def text(self) -> str:
        sink = TextSink(TARGET_FAMILIES)
        for state in self.monitor.store:
            write_target(sink, state, perf_counter())
        return (generate_latest(self.metrics.registry) + sink.render()).decode()


def value(readings: Readings, name: str, **labels: str) -> float:
    """The value of the one sample with this name and exactly these labels.

    A missing series fails the test (AssertionError naming it); it never reads as 0.
    """
    found = [
        float(sample.value)
        for family in text_string_to_metric_families(readings.text())
        for sample in family.samples
        if sample.name == name and sample.labels == labels
    ]
    assert len(found) == 1, f"{len(found)} samples of {name}{labels}, not 1"
    return found[0]


TIMEOUT = 300 * MS  # a persistent target's ping timeout, where a test needs one


def go_durations(**seconds: float) -> dict[str, str]:
    """Settings as a config file has them, from durations in seconds (multiples of ``MS``)."""
    return {key: go_duration(value) for key, value in seconds.items()}


async def eventually(condition: Callable[[], object], timeout: float, step: float = 20 * MS) -> None:
    """Wait until ``condition()`` is true; fail after ``timeout`` seconds (a multiple of ``MS``).

    ``condition`` may raise AssertionError to say "not yet" (a series not there yet): the last
    one is reported if time runs out.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        try:
            if condition():
                return
            last: object = "condition not met"
        except AssertionError as exc:
            last = exc
        assert loop.time() < deadline, f"not within {timeout:.3f}s: {last}"
        await asyncio.sleep(step)


class CloseRecorder:
    """Answers pings and records the close code each client sends."""

    def __init__(self) -> None:
        self.close_codes: list[int] = []
        self.connections = 0

    async def __call__(self, peer: Peer) -> None:
        await peer.upgrade()
        self.connections += 1
        while (frame := await peer.read_frame()) is not None:
            opcode, payload = frame
            if opcode == servers.OP_PING:
                await peer.send(servers.server_frame(servers.OP_PONG, payload))
            elif opcode == servers.OP_CLOSE:
                self.close_codes.append(int.from_bytes(payload[:2], "big"))
                await peer.send(servers.server_frame(servers.OP_CLOSE, payload[:2]))
                return


@contextlib.asynccontextmanager
async def monitoring(data: dict[str, Any], path: Path | None = None) -> AsyncIterator[tuple[Monitor, Readings]]:
    metrics = ExporterMetrics()
    config = load_config(path) if path is not None else parse_config(data, "test.toml")
    live = LiveConfig(
        config,
        path=None if path is None else str(path),
        reload_ok=metrics.reload_ok,
        reload_time=metrics.reload_time,
    )
    monitor = Monitor(live, metrics)
    monitor.start()
    try:
        yield monitor, Readings(monitor, metrics)
    finally:
        await monitor.stop()


async def test_persistent_probe_and_hanging_targets_side_by_side() -> None:
    async with servers.echo_server() as echo, servers.silent_server() as silent:
        data = {
            "settings": go_durations(ping_interval=100 * MS, timeout=300 * MS),
            "targets": [
                {"name": "steady", "url": echo.url("/"), "mode": "persistent", "labels": {"chain": "eth"}},
                {"name": "fresh", "url": echo.url("/"), "interval": go_duration(500 * MS)},
                {"name": "hanging", "url": silent.url("/"), "interval": go_duration(500 * MS)},
            ],
        }
        async with monitoring(data) as (_monitor, metrics):
            steady = {"target": "steady", "chain": "eth"}
            connected = {**steady, "state": "connected"}
            await eventually(lambda: value(metrics, "wsmon_connection_state", **connected) == 1, 2000 * MS)
            pings_before = value(metrics, "wsmon_ping_pong_duration_seconds_count", **steady)
            await asyncio.sleep(2000 * MS)
            pings = value(metrics, "wsmon_ping_pong_duration_seconds_count", **steady) - pings_before
            assert 14 <= pings <= 21, pings  # one per 100 ms
            fresh = value(metrics, "wsmon_probes_total", target="fresh", result="success", reason="none")
            assert 3 <= fresh <= 6, fresh  # one per 500 ms over ~2.2 s
            hanging = value(metrics, "wsmon_probes_total", target="hanging", result="failure", reason="timeout")
            assert 3 <= hanging <= 6, hanging  # fails on time, every time
            assert value(metrics, "probe_success", target="hanging") == 0
            assert value(metrics, "probe_success", target="fresh") == 1
            assert value(metrics, "probe_success", **steady) == 1
            assert value(metrics, "probe_websocket_up", **steady) == 1
            assert value(metrics, "wsmon_targets", mode="persistent") == 1
            assert value(metrics, "wsmon_targets", mode="probe") == 2
            assert value(metrics, "wsmon_ping_pong_window_seconds", **steady, quantile="0.5") > 0
            assert value(metrics, "wsmon_scheduler_lag_seconds_count") > 0


async def test_persistent_target_reconnects_with_backoff() -> None:
    port = servers.refused_port()
    recorder = CloseRecorder()
    data = {
        "settings": go_durations(ping_interval=100 * MS, reconnect_backoff=50 * MS, reconnect_backoff_max=400 * MS),
        "targets": [{"name": "node", "url": f"ws://127.0.0.1:{port}/", "mode": "persistent"}],
    }
    async with monitoring(data) as (monitor, metrics):
        state = monitor.store.get("node")
        assert state is not None
        async with servers.raw_server(recorder, port=port):
            await eventually(lambda: state.state is ConnectionState.CONNECTED, 3000 * MS)
            assert state.reconnects == 0
        # The server is gone: the connection notices at once (the peer closed it).
        await eventually(lambda: state.state is not ConnectionState.CONNECTED, 2000 * MS)
        refused_before = state.failures.get(Reason.REFUSED, 0)
        await asyncio.sleep(1500 * MS)
        attempts = state.failures.get(Reason.REFUSED, 0) - refused_before
        # 50 ms doubling to 400 ms, with jitter: a handful of attempts, not dozens.
        assert 2 <= attempts <= 12, attempts
        async with servers.raw_server(recorder, port=port):
            await eventually(lambda: state.state is ConnectionState.CONNECTED, 2000 * MS)
            assert state.reconnects == 1
            assert value(metrics, "wsmon_reconnects_total", target="node") == 1
            assert value(metrics, "wsmon_probes_total", target="node", result="failure", reason="closed") >= 1


def write_config(path: Path, targets: list[tuple[str, Server, str]], extra: str = "") -> None:
    settings = go_durations(ping_interval=100 * MS, interval=1000 * MS, timeout=500 * MS)
    lines = ["[settings]\n" + "".join(f'{key} = "{value}"\n' for key, value in settings.items()), extra]
    for name, server, mode in targets:
        lines.append(f'[[targets]]\nname = "{name}"\nurl = "{server.url("/")}"\nmode = "{mode}"\n')
    path.write_text("\n".join(lines))


async def test_reload_adds_and_removes_without_touching_the_rest(tmp_path: Path) -> None:
    keep, drop, new = CloseRecorder(), CloseRecorder(), CloseRecorder()
    async with (
        servers.raw_server(keep) as keep_server,
        servers.raw_server(drop) as drop_server,
        servers.raw_server(new) as new_server,
    ):
        path = tmp_path / "targets.toml"
        write_config(path, [("keep", keep_server, "persistent"), ("drop", drop_server, "persistent")])
        async with monitoring({}, path) as (monitor, metrics):
            keep_state, drop_state = monitor.store.get("keep"), monitor.store.get("drop")
            assert keep_state is not None and drop_state is not None
            await eventually(lambda: keep.connections == 1 and drop.connections == 1, 3000 * MS)
            await eventually(lambda: keep_state.pings_ok >= 2, 3000 * MS)
            write_config(path, [("keep", keep_server, "persistent"), ("new", new_server, "persistent")])
            assert monitor.live.reload() is True
            await eventually(lambda: new.connections == 1, 3000 * MS)
            await eventually(lambda: drop.close_codes == [1000], 3000 * MS)  # removed: a normal closure
            assert monitor.store.get("keep") is keep_state  # same history…
            assert keep.connections == 1  # …and the same connection
            assert monitor.store.get("drop") is None
            assert value(metrics, "wsmon_config_last_reload_successful") == 1

            path.write_text("[[targets]]\nname = 'broken'\n")  # no url
            assert monitor.live.reload() is False
            assert value(metrics, "wsmon_config_last_reload_successful") == 0
            assert {s.target.name for s in monitor.store} == {"keep", "new"}
            pings = keep_state.pings_ok
            await eventually(lambda: keep_state.pings_ok > pings, 2000 * MS)  # still running


async def test_stop_sends_going_away_to_every_peer() -> None:
    first, second = CloseRecorder(), CloseRecorder()
    async with servers.raw_server(first) as one, servers.raw_server(second) as two:
        data = {
            "targets": [
                {"name": "one", "url": one.url("/"), "mode": "persistent"},
                {"name": "two", "url": two.url("/"), "mode": "persistent"},
            ]
        }
        async with monitoring(data) as (_monitor, _):
            await eventually(lambda: first.connections == second.connections == 1, 3000 * MS)
        await eventually(lambda: first.close_codes == second.close_codes == [1001], 2000 * MS)


async def test_a_connection_that_stops_answering_pings_is_replaced() -> None:
    async with servers.no_ping_server() as silent_pongs:
        data = {
            "settings": go_durations(ping_interval=100 * MS, timeout=300 * MS, reconnect_backoff=50 * MS),
            "targets": [{"name": "mute", "url": silent_pongs.url("/"), "mode": "persistent"}],
        }
        async with monitoring(data) as (monitor, metrics):
            state = monitor.store.get("mute")
            assert state is not None
            await eventually(lambda: state.failures.get(Reason.PING_TIMEOUT, 0) >= 2, 5000 * MS)
            await eventually(lambda: state.reconnects >= 1, 3000 * MS)
            assert Reason.CLOSED not in state.failures  # the drop was ours: counted once, as ping_timeout
            assert value(metrics, "probe_websocket_ping_pong_success", target="mute") == 0
            assert state.last_error is not None and state.last_error.message == f"no pong within {300 * MS:g}s"


async def test_a_pong_that_came_in_time_is_no_timeout_however_late_the_loop_reads_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """wsmon's loop held past the ping timeout right after a ping went out (a long stall, a
    suspended VM): the pong came at once and waits in the kernel. It is read, and timed by when
    it came, before any ping is judged unanswered: no timeout, no reconnect, no round trip the
    length of the hold."""
    hold = [3 * TIMEOUT]
    tick = PersistentTarget.tick

    def tick_then_hold(self: PersistentTarget) -> None:
        tick(self)  # the ping goes out…
        if hold:
            time.sleep(hold.pop())  # …and the loop is held while its pong comes

    async with threaded(servers.echo_server) as echo:  # answers while this loop is held
        data = {
            "settings": go_durations(ping_interval=100 * MS, timeout=TIMEOUT, reconnect_backoff=50 * MS),
            "targets": [{"name": "held", "url": echo.url("/"), "mode": "persistent"}],
        }
        async with monitoring(data) as (monitor, _):
            state = monitor.store.get("held")
            assert state is not None
            await eventually(lambda: state.pings_ok >= 2, 3000 * MS)
            monkeypatch.setattr(PersistentTarget, "tick", tick_then_hold)
            await eventually(lambda: not hold, 3000 * MS)
            pongs = state.pings_ok
            await eventually(lambda: state.pings_ok >= pongs + 3, 3000 * MS)  # pinged on after the hold
            assert Reason.PING_TIMEOUT not in state.failures
            assert state.reconnects == 0
            assert max(state.window.samples(perf_counter())) < TIMEOUT / 4
