"""The streamed text of ``/metrics`` and push (``stream_store``) against the plain renderer.

``write_target`` into a ``TextSink`` is how the Store was rendered before streaming (both
unchanged): the stream must give the same bytes, for every kind of target alone and all of them
together, whatever the chunking. Plus: the render gives the event loop turns as it goes, its
building blocks (number formatting, histogram lines, window quantiles) equal the plain ones,
push sends the same body, and the event loop's own lag is measured.
"""

from __future__ import annotations

import asyncio
import gc
import gzip
import itertools
import math
import random
import shutil
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st
from prometheus_client.exposition import generate_latest
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.utils import floatToGoString
from starlette.types import Message

import wsmon.continuous.series as series
import wsmon.web.app
from tests import servers
from tests.realservers import wsmon_serve
from tests.servers import MS
from tests.test_remote_write import decode
from wsmon.config.file import Config, Mode, Subscription, Target
from wsmon.config.live import LiveConfig
from wsmon.config.push import PushTarget
from wsmon.config.series import FULL, PRESETS, SeriesBudget
from wsmon.continuous.push import Pusher
from wsmon.continuous.series import TARGET_FAMILIES, render_store, stream_store, text_chunks, write_target
from wsmon.continuous.store import ConnectionState, Store, TargetState
from wsmon.continuous.window import RollingWindow, quantile
from wsmon.metrics.exporter import ExporterMetrics, LoopLag
from wsmon.metrics.histogram import LATENCY_BUCKETS, LatencyHistogram
from wsmon.metrics.sinks import TextSink, format_value, histogram_text, label_text
from wsmon.probe.jsonpath import JsonPath
from wsmon.probe.module import BUILTIN_MODULES
from wsmon.probe.reasons import Reason
from wsmon.probe.result import PingStats, ProbeResult, StepResult
from wsmon.serve import _freeze_heap
from wsmon.web.app import ExporterState, create_app

# client_python's own formatting, untyped there: the reference the fast path must equal.
go_string: Callable[[float], str] = floatToGoString

MONO = 50_000.0  # the monotonic clock the windows are written and read with
PING = BUILTIN_MODULES["ping"]
CONNECT = BUILTIN_MODULES["connect"]
PHASES = {"resolve": 0.0012, "connect": 0.0021, "tls": 0.0134, "upgrade": 0.0031}


@pytest.fixture(autouse=True)
def frozen_window_clock(monkeypatch: pytest.MonkeyPatch) -> None:
    """Both renderers read the windows at MONO (the stream otherwise reads them a little later);
    so does /metrics, which cuts them when the request comes."""
    monkeypatch.setattr(series, "perf_counter", lambda: MONO)
    monkeypatch.setattr(wsmon.web.app, "perf_counter", lambda: MONO)


def _persistent(name: str, module: object = PING, **extra: object) -> Target:
    return Target(name=name, url=f"ws://h.example/{name}", module=module, mode=Mode.PERSISTENT, **extra)  # type: ignore[arg-type]


def _probed(name: str, module: object = PING, **extra: object) -> Target:
    return Target(name=name, url=f"ws://h.example/{name}", module=module, **extra)  # type: ignore[arg-type]


def _pongs(state: TargetState, count: int, start: float = MONO - 200.0, step: float = 1.0) -> None:
    rnd = random.Random(count)
    for k in range(count):
        state.record_pong(rnd.lognormvariate(-6.0, 0.7), start + k * step)


def _connected(state: TargetState) -> None:
    state.state = ConnectionState.CONNECTING
    state.record_connected(0.0123)
    _pongs(state, 40)
    state.record_failure(Reason.PING_TIMEOUT, "no pong")
    state.record_failure(Reason.CLOSED, "closed")
    state.record_connected(0.0456)  # a reconnect
    _pongs(state, 20, start=MONO - 20.0)


def _disconnected(state: TargetState) -> None:
    state.record_connected(0.01)
    state.record_pong(0.002, MONO - 5.0)
    state.record_failure(Reason.CLOSED, "the server closed the WebSocket (code 1011)")
    state.record_disconnected()


def _subscribed(state: TargetState) -> None:
    state.record_connected(0.02)
    _pongs(state, 5)
    for _ in range(3):
        state.record_message()
    state.record_value("block", 19_000_123.0)
    state.record_value("peers", 25.0)


def _wrapped_window(state: TargetState) -> None:
    """More pongs than the window holds, the oldest of them expired: the ring wraps."""
    state.record_connected(0.005)
    _pongs(state, state.window.capacity + 57, start=MONO - 400.0)


def _expired_window(state: TargetState) -> None:
    state.record_connected(0.005)
    _pongs(state, 10, start=MONO - 1000.0)


def _result(**fields: object) -> Callable[[TargetState], None]:
    defaults: dict[str, object] = {
        "success": True,
        "duration": 0.0412,
        "timeout": 10.0,
        "up": True,
        "phases": PHASES,
        "status_code": 101,
    }
    result = ProbeResult(**{**defaults, **fields})  # type: ignore[arg-type]

    def feed(state: TargetState) -> None:
        state.record_probe(ProbeResult(success=False, duration=1.0, timeout=10.0, reason=Reason.DNS), MONO - 60)
        state.record_probe(result, MONO - 1.0)

    return feed


def _nothing(state: TargetState) -> None:
    pass


# name → (target, what happened to it)
KINDS: dict[str, tuple[Target, Callable[[TargetState], None]]] = {
    "persistent connected": (_persistent("p-conn", labels=(("chain", "eth"),)), _connected),
    "persistent never connected": (_persistent("p-new"), lambda s: setattr(s, "state", ConnectionState.CONNECTING)),
    "persistent disconnected": (_persistent("p-down"), _disconnected),
    "persistent without pings": (_persistent("p-noping", module=CONNECT), lambda s: s.record_connected(0.003)),
    "persistent subscription": (
        _persistent("p-sub", subscribe=Subscription(send="{}", extract=JsonPath.parse("result"), name="block")),
        _subscribed,
    ),
    "persistent wrapped window": (_persistent("p-wrap"), _wrapped_window),
    "persistent expired window": (_persistent("p-old"), _expired_window),
    "labels to escape": (
        _persistent('p-esc\\"\n', labels=(("note", 'say "hi"\\\nbye'), ("city", "Zürich ✓"))),
        _connected,
    ),
    "probe ok": (
        _probed("r-ok", labels=(("region", "eu"),)),
        _result(ip_protocol=6, tls_version="TLSv1.3", cert_expiry=1_800_000_000.0, ping=PingStats(1, (0.0042,))),
    ),
    "probe pings with loss": (
        _probed("r-loss"),
        _result(ping=PingStats(4, (0.003, 0.0051, 0.0047)), success=False, reason=Reason.PING_TIMEOUT),
    ),
    "probe all pings lost": (
        _probed("r-lost"),
        _result(ping=PingStats(3, ()), success=False, reason=Reason.PING_TIMEOUT),
    ),
    "probe steps": (
        _probed("r-steps"),
        _result(
            ping=PingStats(1, (0.002,)),
            steps=(
                StepResult(index=0, success=True, duration=0.004, value_name="block", value=123456789.0),
                StepResult(index=1, success=False, duration=0.5, failed_due_to_regex=True),
            ),
            success=False,
            reason=Reason.MESSAGE_MISMATCH,
        ),
    ),
    "probe refused": (
        _probed("r-refused"),
        _result(success=False, up=False, reason=Reason.REFUSED, phases={"resolve": 0.001}, status_code=None),
    ),
    "probe handshake refused": (
        _probed("r-403"),
        _result(success=False, up=False, reason=Reason.HTTP_STATUS, status_code=403),
    ),
    "probe without pings": (_probed("r-noping", module=CONNECT), _result()),
    "probe pending": (_probed("r-pending"), _nothing),
    # Series budgets (wsmon.config.series): the stream skips what the budget leaves out as
    # write_target does.
    "persistent lean": (_persistent("p-lean", series=PRESETS["lean"]), _connected),
    "persistent own buckets, two quantiles": (
        _persistent("p-own", series=SeriesBudget(buckets=(0.001, 0.004), quantiles=(0.5, 0.99))),
        _connected,
    ),
    "persistent no quantiles": (_persistent("p-noq", series=SeriesBudget(quantiles=())), _connected),
    "probe lean": (
        _probed("r-lean", series=PRESETS["lean"]),
        _result(ip_protocol=4, tls_version="TLSv1.3", cert_expiry=1_800_000_000.0, ping=PingStats(3, (0.003, 0.004))),
    ),
    "probe without phases": (
        _probed("r-nophase", series=SeriesBudget(phases=False)),
        _result(ping=PingStats(1, (0.0042,)), success=False, reason=Reason.PING_TIMEOUT),
    ),
    "persistent blackbox names": (_persistent("p-bb", series=SeriesBudget(blackbox=True)), _connected),
    "probe blackbox names": (
        _probed("r-bb", series=SeriesBudget(blackbox=True)),
        _result(
            phases={**PHASES, "message": 0.0021, "close": 0.0003},
            steps=(StepResult(index=0, success=True, duration=0.002),),
        ),
    ),
    "probe without details": (
        _probed("r-nodetail", series=SeriesBudget(details=False, histograms=False)),
        _result(
            ping=PingStats(2, (0.002, 0.003)),
            steps=(StepResult(index=0, success=True, duration=0.004, value_name="block", value=1.0),),
        ),
    ),
}


def render_reference(store: Store) -> bytes:
    """The Store through ``write_target`` and ``TextSink``, whole: the text before streaming."""
    sink = TextSink(TARGET_FAMILIES)
    for state in store:
        write_target(sink, state, MONO)
    return sink.render()


def _store(kinds: list[str]) -> Store:
    store = Store()
    for kind in kinds:
        target, feed = KINDS[kind]
        feed(store.add(target, window=300.0, sample_interval=1.0))
    return store


def _stream(store: Store) -> bytes:
    return asyncio.run(render_store(store))


def _text_samples(text: bytes) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text.decode())
        for sample in family.samples
    }


def test_remote_write_carries_the_series_of_the_text() -> None:
    store = _store(list(KINDS))
    body, _ = asyncio.run(series.remote_write_body(store, 1_764_680_000_000, ()))
    written = {
        (dict(labels)["__name__"], tuple(label for label in labels if label[0] != "__name__")): samples[0][0]
        for labels, samples in decode(body)
    }
    assert written == _text_samples(_stream(store))


@pytest.mark.parametrize("kind", list(KINDS))
def test_stream_equals_the_plain_render(kind: str) -> None:
    store = _store([kind])
    assert _stream(store) == render_reference(store)


def test_every_window_of_a_scrape_is_cut_when_the_scrape_began(monkeypatch: pytest.MonkeyPatch) -> None:
    """However long a scrape takes, its windows are all cut at its start: the clock read later
    (here 100 s per read, past every window's span) changes no quantile."""
    store = _store(["persistent connected", "persistent wrapped window", "labels to escape"])
    reference = render_reference(store)  # every window read at MONO
    reads = itertools.count()
    monkeypatch.setattr(series, "perf_counter", lambda: MONO + 100.0 * next(reads))
    assert _stream(store) == reference


def test_stream_equals_the_plain_render_for_every_kind_together() -> None:
    kinds = list(KINDS)
    random.Random(7).shuffle(kinds)
    store = _store(kinds + list(KINDS))  # twice over: the same names, replaced in place
    reference = render_reference(store)
    assert _stream(store) == reference
    families = {family.name for family in text_string_to_metric_families(reference.decode())}
    assert len(families) == len(TARGET_FAMILIES)  # the table covers every family


@pytest.mark.parametrize(("chunk_bytes", "block"), [(1, 1), (100, 3), (4096, 7)])
def test_chunking_changes_nothing(monkeypatch: pytest.MonkeyPatch, chunk_bytes: int, block: int) -> None:
    monkeypatch.setattr(series, "CHUNK_BYTES", chunk_bytes)
    monkeypatch.setattr(series, "BLOCK", block)
    store = _store(list(KINDS))
    assert _stream(store) == render_reference(store)


def test_empty_store() -> None:
    assert _stream(Store()) == b"" == render_reference(Store())


# --- the event loop's turns ------------------------------------------------------------------------


def _many(count: int) -> Store:
    store = Store()
    for i in range(count):
        _connected(store.add(_persistent(f"t{i}"), window=300.0, sample_interval=1.0))
    return store


def test_pieces_stay_near_the_chunk_size(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(series, "_clock", lambda: 0.0)  # time never runs out: pieces end by size
    pieces = list(text_chunks(list(_many(300))))
    total = sum(map(len, pieces))
    assert total > 10 * series.CHUNK_BYTES
    # A piece ends at the first block boundary past CHUNK_BYTES: one block's text more at most.
    largest_block = series.BLOCK * 2_000
    assert max(map(len, pieces)) < series.CHUNK_BYTES + largest_block
    assert len(pieces) >= total // (series.CHUNK_BYTES + largest_block)


def test_time_hands_control_back_every_block(monkeypatch: pytest.MonkeyPatch) -> None:
    """A column writing little but slowly still yields: with a clock that moves on by more than
    TURN at each look, every block of every pass (and of the rows' preparation) ends a piece."""
    ticks = itertools.count()
    monkeypatch.setattr(series, "_clock", lambda: next(ticks) * 2 * series.TURN)
    count = 5 * series.BLOCK
    store = _many(count)
    pieces = list(text_chunks(list(store)))
    passes = sum(1 for _, kind, _ in series._PASSES if kind in (series._ALL, series._CONNECTIONS))
    assert len(pieces) >= (count // series.BLOCK) * (1 + passes)
    assert "".join(pieces).encode() == render_reference(store)


def test_families_most_targets_lack_are_written_from_the_targets_that_have_them(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """blackbox_exporter's names, subscriptions and extracted values: their columns are given
    only the targets whose budget, config or values call for them, and the text is the same."""
    calls: dict[str, list[str]] = {}

    def counted(family: str, column: series.Column) -> series.Column:
        def call(state: TargetState, result: ProbeResult | None, b: str, o: str) -> str:
            calls.setdefault(family, []).append(state.target.name)
            return column(state, result, b, o)

        return call

    passes = [(header, kind, counted(header.split()[2], column)) for header, kind, column in series._PASSES]
    monkeypatch.setattr(series, "_PASSES", tuple(passes))
    store = _store(list(KINDS))
    assert "".join(text_chunks(list(store))).encode() == render_reference(store)
    assert calls["probe_websocket_connection_upgraded"] == ["p-bb", "r-bb"]
    assert calls["wsmon_messages_received_total"] == calls["wsmon_last_message_timestamp_seconds"] == ["p-sub"]
    assert calls["wsmon_message_value"] == calls["wsmon_message_value_changed_timestamp_seconds"]
    assert calls["wsmon_message_value"] == ["p-sub", "r-steps", "r-nodetail"]
    calls.clear()
    plain = _many(50)
    assert "".join(text_chunks(list(plain))).encode() == render_reference(plain)
    assert len(calls["probe_success"]) == 50
    rare = {"probe_websocket_connection_upgraded", "wsmon_messages_received_total", "wsmon_message_value"}
    assert not rare & set(calls)


async def test_stream_store_gives_the_loop_a_turn_per_piece(monkeypatch: pytest.MonkeyPatch) -> None:
    """Count the loop's turns while the store streams: a callback re-queued with call_soon runs
    once per turn. (Pieces by size only here, so that both renders cut them alike.)"""
    monkeypatch.setattr(series, "_clock", lambda: 0.0)
    store = _many(200)
    loop = asyncio.get_running_loop()
    turns = 0
    spinning = True

    def spin() -> None:
        nonlocal turns
        turns += 1
        if spinning:
            loop.call_soon(spin)

    pieces = len(list(text_chunks(list(store))))
    loop.call_soon(spin)
    chunks = [chunk async for chunk in stream_store(store)]
    spinning = False
    assert len(chunks) >= 5
    assert turns >= pieces >= len(chunks)


# --- the pieces of text ----------------------------------------------------------------------------

FLOATS = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.floats(min_value=1e6, max_value=1e16),  # Go's exponent written by format_value itself
    st.sampled_from([0.0, -0.0, 1e6, -1e6, 999_999.999_999_9, 1_000_000.000_000_1, 1e-5, 1.7e9, 1e16, 1e22]),
    st.sampled_from([1e15, 9_999_999_999_999_998.0, 1_234_567.0, 1_000_000.5, 1_796_000_000.123_456, 10_000_000.0]),
    st.integers(min_value=-(10**20), max_value=10**20).map(float),
)


@given(FLOATS)
def test_format_value_is_client_pythons_float_to_go_string(value: float) -> None:
    assert format_value(value) == go_string(value)


@given(st.integers(min_value=0, max_value=10**12))
def test_format_value_of_counts(count: int) -> None:
    assert format_value(count) == go_string(count)


def test_format_value_writes_gos_exponent_as_client_python_does() -> None:
    """From 1e6 to 1e16 format_value writes the exponent itself: every power of ten, values with
    trailing zeros, the bounds' neighbours, and 50,000 values spread over the range."""
    rnd = random.Random(5)
    values = [10.0**power * mantissa for power in range(6, 16) for mantissa in (1.0, 1.5, 9.999_999_999_999_999)]
    values += [1e6, math.nextafter(1e6, 0.0), math.nextafter(1e6, 2e6), math.nextafter(1e16, 0.0), 1e16]
    values += [10.0 ** rnd.uniform(6.0, 16.0) for _ in range(50_000)]
    values += [float(rnd.randrange(10**6, 10**16)) for _ in range(10_000)]
    values += [1_796_000_000.0 + rnd.randrange(10**6) / 10 ** rnd.randrange(7) for _ in range(10_000)]
    assert [format_value(value) for value in values] == [go_string(value) for value in values]


@given(st.lists(st.floats(min_value=0.0, max_value=30.0), max_size=60), st.booleans())
def test_histogram_text_is_the_text_sinks(values: list[float], labelled: bool) -> None:
    histogram = LatencyHistogram()
    for value in values:
        histogram.observe(value)
    labels = (("target", 'a"b'),) if labelled else ()
    sink = TextSink({"h": ("histogram", "help")})
    sink.target(labels)
    sink.histogram("h", histogram)
    body = sink.render().decode().split("\n", 2)[2]  # past # HELP and # TYPE
    text = label_text(labels)
    braced, opened = (f"{{{text}}}", f"{{{text},") if text else ("", "{")
    assert histogram_text("h", histogram, braced, opened) == body
    assert body.count("_bucket{") == len(LATENCY_BUCKETS) + 1


SAMPLES = st.lists(st.floats(min_value=0.0, max_value=20.0, width=32), min_size=1, max_size=80)


@given(SAMPLES, st.integers(min_value=1, max_value=60), st.integers(min_value=0, max_value=200))
def test_window_quantiles_are_quantile_of_the_sorted_samples(samples: list[float], span: int, late: int) -> None:
    window = RollingWindow(span=float(span), capacity=max(1, len(samples) // 2))
    for i, value in enumerate(samples):
        window.add(value, now=1_000.0 + i)
    now = 1_000.0 + late
    ordered = sorted(window.samples(now))
    expected = [quantile(ordered, q) for q in FULL.quantiles] if ordered else None
    assert window.quantiles(now, FULL.quantiles) == expected
    assert window.quantiles(now, list(FULL.quantiles)) == expected


# --- /metrics, push ------------------------------------------------------------------------------


class _Monitor:
    """What /metrics reads of a Monitor."""

    started = True

    def __init__(self, store: Store) -> None:
        self.store = store


async def _get_metrics(state: ExporterState) -> tuple[list[Message], bytes]:
    sent: list[Message] = []
    received = False

    async def receive() -> Message:
        nonlocal received
        if received:
            await asyncio.Event().wait()  # no disconnect while the response streams
        received = True
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Message) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.3"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": "/metrics",
        "raw_path": b"/metrics",
        "query_string": b"",
        "root_path": "",
        "headers": [(b"host", b"wsmon")],
        "client": ("127.0.0.1", 40000),
        "server": ("127.0.0.1", 9095),
    }
    await create_app(state)(scope, receive, send)
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return sent, body


async def test_metrics_streams_the_exporters_series_then_the_stores() -> None:
    store = _store(list(KINDS))
    state = ExporterState(live=LiveConfig(Config()), monitor=_Monitor(store))  # type: ignore[arg-type]
    sent, body = await _get_metrics(state)
    start = sent[0]
    assert start["status"] == 200
    headers = dict(start["headers"])
    assert headers[b"content-type"].startswith(b"text/plain; version=0.0.4")
    assert b"content-length" not in headers  # streamed
    assert len([m for m in sent if m["type"] == "http.response.body"]) > 2
    own, reference = generate_latest(state.metrics.registry), render_reference(store)
    assert body.endswith(reference)
    assert body[: -len(reference)].startswith(own.split(b"\n", 1)[0])  # the exporter's own first
    names = {f.name for f in text_string_to_metric_families(body.decode())}
    assert {"wsmon_build_info", "wsmon_event_loop_lag_seconds", "wsmon_probes", "probe_success"} <= names


async def test_metrics_before_the_monitor_started_has_the_exporters_series_only() -> None:
    monitor = _Monitor(_store(["persistent connected"]))
    monitor.started = False
    state = ExporterState(live=LiveConfig(Config()), monitor=monitor)  # type: ignore[arg-type]
    _, body = await _get_metrics(state)
    assert b"wsmon_build_info" in body
    assert b"probe_success" not in body


@pytest.mark.parametrize("kind", ["victoriametrics", "pushgateway"])
async def test_push_sends_the_same_body(kind: str) -> None:
    store = _many(150)
    sent: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        sent.append(request)
        return httpx.Response(204 if kind == "victoriametrics" else 200)

    metrics = ExporterMetrics()
    target = PushTarget(name="dest", kind=kind, url="http://push.example")  # type: ignore[arg-type]
    client = httpx.AsyncClient(transport=httpx.MockTransport(handler))
    pusher = Pusher(target, lambda: stream_store(store), metrics, client=client)
    assert await pusher.push()
    await client.aclose()
    (request,) = sent
    reference = render_reference(store)
    if kind == "victoriametrics":
        assert request.headers["content-encoding"] == "gzip"
        assert gzip.decompress(request.content) == reference
    else:
        assert request.content == reference
    assert metrics.registry.get_sample_value("wsmon_push_last_payload_bytes", {"push": "dest"}) == len(reference)


async def test_gzip_batches_give_one_gzip_stream(monkeypatch: pytest.MonkeyPatch) -> None:
    import wsmon.continuous.push as push

    monkeypatch.setattr(push, "_GZIP_BATCH", 1000)  # many batches
    store = _many(40)
    compressed, size = await push.gzip_chunks(stream_store(store))
    reference = render_reference(store)
    assert size == len(reference)
    assert gzip.decompress(compressed) == reference


@pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool (Debian: prometheus) is not installed")
def test_promtool_checks_the_metrics() -> None:
    body = generate_latest(ExporterMetrics().registry) + _stream(_store(list(KINDS)))
    result = subprocess.run(["promtool", "check", "metrics"], input=body, capture_output=True, check=False)
    assert result.returncode == 0, (result.stdout + result.stderr).decode()


# --- the event loop's own lag ------------------------------------------------------------------------


def _lag_counts(metrics: ExporterMetrics) -> tuple[float, float]:
    """(observations, observations above 25 ms)."""
    get = metrics.registry.get_sample_value
    count = get("wsmon_event_loop_lag_seconds_count") or 0.0
    return count, count - (get("wsmon_event_loop_lag_seconds_bucket", {"le": "0.025"}) or 0.0)


async def test_loop_lag_reads_a_stall() -> None:
    metrics = ExporterMetrics()
    lag = LoopLag(metrics.loop_lag.observe, period=5 * MS)
    lag.start()
    try:
        await asyncio.sleep(30 * MS)
        quiet, _ = _lag_counts(metrics)
        assert quiet >= 2
        time.sleep(60 * MS)  # noqa: ASYNC251 - the loop held on purpose: the next reading is ≥ 55 ms late
        await asyncio.sleep(15 * MS)
        count, late = _lag_counts(metrics)
        assert count > quiet
        assert late >= 1
        assert (metrics.registry.get_sample_value("wsmon_event_loop_lag_seconds_sum") or 0.0) >= 50 * MS
    finally:
        lag.stop()
    stopped, _ = _lag_counts(metrics)
    await asyncio.sleep(20 * MS)
    assert _lag_counts(metrics)[0] == stopped


def test_loop_lag_is_an_exporter_series() -> None:
    text = generate_latest(ExporterMetrics().registry).decode()
    assert "# TYPE wsmon_event_loop_lag_seconds histogram" in text
    assert 'wsmon_event_loop_lag_seconds_bucket{le="0.0005"} 0.0' in text
    assert 'wsmon_event_loop_lag_seconds_bucket{le="1.0"} 0.0' in text


async def test_serve_reads_its_loop_lag(tmp_path: Path) -> None:
    async with servers.echo_server() as echo:
        config = tmp_path / "targets.toml"
        config.write_text(f'[[targets]]\nname = "a"\nurl = "{echo.url("/")}"\nmode = "persistent"\n')
        async with wsmon_serve(tmp_path, config) as wsmon, httpx.AsyncClient() as client:
            await asyncio.sleep(200 * MS)
            text = (await client.get(f"{wsmon.base}/metrics")).text
    (family,) = [f for f in text_string_to_metric_families(text) if f.name == "wsmon_event_loop_lag_seconds"]
    counts = [s.value for s in family.samples if s.name.endswith("_count")]
    assert counts and counts[0] >= 2


def test_freeze_heap_moves_what_lives_out_of_the_collectors_sight() -> None:
    try:
        _freeze_heap()
        assert gc.get_freeze_count() > 1000
        garbage: list[object] = []
        garbage.append(garbage)  # a cycle made after freezing: still collected
        del garbage
        assert gc.collect() >= 1
    finally:
        gc.unfreeze()
