"""Series budgets (wsmon.config.series): what the file says, and what a target then exports."""

from __future__ import annotations

import asyncio
import tomllib
from collections.abc import Callable
from typing import Any

import pytest

import wsmon.continuous.series as series
from tests.test_render import MONO, _persistent, _pongs, _probed, _result
from tests.test_web import SEED_SIX
from wsmon.config.file import Target, parse_config
from wsmon.config.series import FULL, PRESETS, SeriesBudget, parse_series
from wsmon.continuous.store import Store, TargetState
from wsmon.errors import ConfigError
from wsmon.probe.result import PingStats, StepResult

LEAN = PRESETS["lean"]


@pytest.fixture(autouse=True)
def frozen_window_clock(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(series, "perf_counter", lambda: MONO)


@pytest.mark.parametrize(
    ("raw", "base", "expected"),
    [
        ("lean", FULL, LEAN),
        ("full", LEAN, FULL),
        ({}, LEAN, LEAN),  # a table naming nothing changes nothing
        ({"preset": "lean", "histograms": True}, FULL, SeriesBudget(quantiles=(), phases=False, details=False)),
        (
            {"quantiles": [0.99, 0.5]},
            LEAN,
            SeriesBudget(histograms=False, quantiles=(0.5, 0.99), phases=False, details=False),
        ),
        ({"quantiles": []}, FULL, SeriesBudget(quantiles=())),
        ({"buckets": [0.001, 0.01, 1]}, FULL, SeriesBudget(buckets=(0.001, 0.01, 1.0))),
        ({"phases": False, "details": False}, FULL, SeriesBudget(phases=False, details=False)),
        ({"quantiles": [0, 1]}, FULL, SeriesBudget(quantiles=(0.0, 1.0))),
    ],
)
def test_parse_series(raw: Any, base: SeriesBudget, expected: SeriesBudget) -> None:
    assert parse_series(raw, "f.toml", base) == expected


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ("tiny", "f.toml: series: preset must be one of full, lean"),
        (3, 'f.toml: series must be a preset ("full" or "lean") or a table'),
        ({"histogram": True}, "f.toml: series: unknown key 'histogram'; allowed keys are blackbox, buckets, details"),
        ({"histograms": "no"}, "f.toml: series: histograms must be a boolean, not a string"),
        ({"quantiles": [0.5, 2]}, "f.toml: series: quantiles must lie between 0 (the minimum) and 1 (the maximum)"),
        ({"quantiles": [0.5, 0.5]}, "f.toml: series: quantiles lists a quantile twice"),
        ({"quantiles": ["p99"]}, "f.toml: series: quantiles must be an array of numbers"),
        ({"quantiles": [True]}, "f.toml: series: quantiles must be an array of numbers"),
        ({"buckets": [0.1, 0.01]}, "f.toml: series: buckets must be positive and increasing"),
        ({"buckets": [0.1, 0.1]}, "f.toml: series: buckets must be positive and increasing"),
        ({"buckets": [0, 1]}, "f.toml: series: buckets must be positive and increasing"),
        ({"buckets": []}, "f.toml: series: buckets must hold 1 to 64 upper bounds in seconds (+Inf is added)"),
        ({"buckets": [float(i + 1) for i in range(65)]}, "f.toml: series: buckets must hold 1 to 64"),
        ({"buckets": [1, float("inf")]}, "f.toml: series: buckets must hold finite numbers (no inf or nan)"),
    ],
)
def test_bad_series(raw: Any, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_series(raw, "f.toml", FULL)
    assert str(caught.value).startswith(message)
    assert "\n" not in str(caught.value)


CONFIG = """
[settings]
series = { preset = "lean", quantiles = [0.5, 0.99] }

[[targets]]
name = "inherits"
url = "wss://a.example/x"

[[targets]]
name = "own-histograms"
url = "wss://a.example/y"
series = { histograms = true, buckets = [0.01, 0.1] }

[[targets]]
name = "everything"
url = "wss://a.example/z"
series = "full"
"""


def test_targets_start_from_the_settings() -> None:
    config = parse_config(tomllib.loads(CONFIG), "f.toml")
    inherits, own, everything = config.targets
    settings = SeriesBudget(histograms=False, quantiles=(0.5, 0.99), phases=False, details=False)
    assert config.settings.series == settings
    assert inherits.series == settings
    assert own.series == SeriesBudget(buckets=(0.01, 0.1), quantiles=(0.5, 0.99), phases=False, details=False)
    assert everything.series == FULL


def test_without_series_settings_every_target_has_everything() -> None:
    config = parse_config({"targets": [{"name": "a", "url": "ws://a.example/"}]}, "f.toml")
    assert config.targets[0].series == FULL


def test_a_bad_series_names_the_target() -> None:
    raw = {"targets": [{"name": "a", "url": "ws://a.example/", "series": {"quantiles": [5]}}]}
    with pytest.raises(ConfigError, match=r"^f.toml: target 'a': series: quantiles must lie between"):
        parse_config(raw, "f.toml")


# --- what a target exports ----------------------------------------------------------------------


def _scrape(target: Target, feed: Callable[[TargetState], None]) -> list[str]:
    store = Store()
    feed(store.add(target, window=300.0, sample_interval=1.0))
    text = asyncio.run(series.render_store(store)).decode()
    return [line for line in text.splitlines() if line and not line.startswith("#")]


def _connected(state: TargetState) -> None:
    state.record_connected(0.01)
    _pongs(state, 30, start=MONO - 30.0)


# A wss:// probe with a ping: every per-probe figure but multi-ping and message steps (and one
# DNS failure before the success: two `wsmon_probes_total` series).
_PROBED_OK = _result(ip_protocol=4, tls_version="TLSv1.3", cert_expiry=1.8e9, ping=PingStats(1, (0.004,)))

# The series per target the README states (Series budget).
SERIES_PER_TARGET = [
    ("full", "persistent", 52),
    ("lean", "persistent", 11),
    ("full", "probe", 58),
    ("lean", "probe", 8),
]


@pytest.mark.parametrize(("preset", "mode", "count"), SERIES_PER_TARGET)
def test_series_per_target(preset: str, mode: str, count: int) -> None:
    budget = PRESETS[preset]
    if mode == "persistent":
        lines = _scrape(_persistent("t", series=budget), _connected)
    else:
        lines = _scrape(_probed("t", series=budget), _PROBED_OK)
    assert len(lines) == count, "\n".join(lines)


def _names(lines: list[str]) -> set[str]:
    return {line.split("{", 1)[0].split(" ", 1)[0] for line in lines}


def test_lean_keeps_the_seed_gauges_state_and_counters() -> None:
    persistent = _names(_scrape(_persistent("t", series=LEAN), _connected))
    connection = {"wsmon_connection_state", "wsmon_reconnects_total", "wsmon_connected_since_timestamp_seconds"}
    # A persistent connection has no probe, so no probe_duration_seconds.
    assert persistent == set(SEED_SIX) - {"probe_duration_seconds"} | {"wsmon_probes_total"} | connection
    probed = _names(_scrape(_probed("t", series=LEAN), _PROBED_OK))
    assert probed == {*SEED_SIX, "wsmon_probes_total"}


def test_own_buckets_and_quantiles() -> None:
    budget = SeriesBudget(buckets=(0.001, 0.004), quantiles=(0.5,))
    lines = _scrape(_persistent("t", series=budget), _connected)
    buckets = [line for line in lines if line.startswith("wsmon_ping_pong_duration_seconds_bucket")]
    assert [line.split('le="')[1].split('"')[0] for line in buckets] == ["0.001", "0.004", "+Inf"]
    window = [line for line in lines if line.startswith("wsmon_ping_pong_window_seconds")]
    assert [line.split("{")[0] for line in window] == [
        "wsmon_ping_pong_window_seconds",
        "wsmon_ping_pong_window_seconds_sum",
        "wsmon_ping_pong_window_seconds_count",
    ]
    assert 'quantile="0.5"' in window[0]
    assert window[2].endswith(" 30")  # every pong since start


def test_the_switches_remove_their_families() -> None:
    off = SeriesBudget(histograms=False, quantiles=(), phases=False, details=False)
    on = _names(_scrape(_probed("t"), _PROBED_OK))
    gone = on - _names(_scrape(_probed("t", series=off), _PROBED_OK))
    assert gone == {
        "wsmon_connect_duration_seconds_bucket",
        "wsmon_connect_duration_seconds_sum",
        "wsmon_connect_duration_seconds_count",
        "wsmon_ping_pong_duration_seconds_bucket",
        "wsmon_ping_pong_duration_seconds_sum",
        "wsmon_ping_pong_duration_seconds_count",
        "wsmon_ping_pong_window_seconds",
        "wsmon_ping_pong_window_seconds_sum",
        "wsmon_ping_pong_window_seconds_count",
        "probe_websocket_duration_seconds",
        "probe_websocket_status_code",
        "probe_timeout_seconds",
        "probe_ip_protocol",
        "probe_ssl_earliest_cert_expiry",
        "probe_tls_version_info",
    }


def test_blackbox_names() -> None:
    phases = {"resolve": 0.001, "connect": 0.002, "tls": 0.01, "upgrade": 0.003, "message": 0.02, "close": 0.001}
    probed = _result(phases=phases, steps=(StepResult(index=0, success=True, duration=0.02),))
    lines = _scrape(_probed("t", series=SeriesBudget(blackbox=True)), probed)
    named = {line.split(" ")[0]: float(line.split(" ")[1]) for line in lines}
    assert named['probe_websocket_connection_upgraded{target="t"}'] == 1.0
    assert named['probe_dns_lookup_time_seconds{target="t"}'] == 0.001
    by_phase = {
        key.split('phase="')[1].split('"')[0]: value
        for key, value in named.items()
        if key.startswith("probe_websocket_duration_seconds{")
    }
    assert by_phase == {
        "resolve": 0.001,
        "connect": 0.002,
        "processing": pytest.approx(0.013),
        "transfer": 0.02,
        "close": 0.001,
    }
    assert sum(by_phase.values()) == pytest.approx(sum(phases.values()))  # still adds up to the probe
    plain = _names(_scrape(_probed("t"), probed))
    assert "probe_websocket_connection_upgraded" not in plain and "probe_dns_lookup_time_seconds" not in plain


def test_blackbox_names_of_a_persistent_connection() -> None:
    lines = _scrape(_persistent("t", series=SeriesBudget(blackbox=True)), _connected)
    assert 'probe_websocket_connection_upgraded{target="t"} 1.0' in lines
