"""The probe against real local servers: outcomes, reasons, deadlines, secrets."""

from __future__ import annotations

import contextlib
import json
import re
import time
from collections.abc import AsyncIterator, Callable
from time import perf_counter

import pytest

from tests import servers
from tests.preempt import preempt_ping_sends
from tests.servers import MS, SNAPSHOT_SIZE, Server, TLSCertificates
from wsmon.probe.jsonpath import JsonPath
from wsmon.probe.log import ProbeLog
from wsmon.probe.module import BUILTIN_MODULES, Module, Step
from wsmon.probe.prober import MAX_RESENDS, probe
from wsmon.probe.reasons import Phase, Reason
from wsmon.probe.result import ProbeResult
from wsmon.ws import stamps
from wsmon.ws.tls import TLSOptions

PING = BUILTIN_MODULES["ping"]
CONNECT = BUILTIN_MODULES["connect"]
OK_TIMEOUT = 5000 * MS  # for probes that should succeed: never the limiting factor
HOSTILE_TIMEOUT = 500 * MS  # for probes the peer tries to hold: this is what ends them
SLACK = 200 * MS  # how far past its deadline a probe may end


BLOCK_NUMBER = '{"jsonrpc":"2.0","id":1,"method":"eth_blockNumber","params":[]}'


async def run(url: str, module: Module = PING, timeout: float = OK_TIMEOUT, log: ProbeLog | None = None) -> ProbeResult:
    """probe(), checking it ends by its deadline and that its own duration is honest."""
    began = perf_counter()
    result = await probe(url, module, timeout, log=log)
    elapsed = perf_counter() - began
    assert elapsed <= timeout + SLACK, f"the probe took {elapsed:.3f}s with a {timeout:.3f}s timeout"
    assert 0 <= result.duration <= elapsed
    assert result.timeout == timeout
    return result


def assert_failed(result: ProbeResult, reason: Reason) -> None:
    assert (result.success, result.reason) == (False, reason), result.error
    assert result.error


# --- success ----------------------------------------------------------------------------


async def test_ping_probe_succeeds_with_plausible_timings(echo_server: Server) -> None:
    result = await run(echo_server.url())
    assert result.success, result.error
    assert (result.reason, result.error, result.up, result.status_code) == (None, "", True, 101)
    assert result.ip_protocol == 4
    assert {"resolve", "connect", "upgrade", "close"} <= set(result.phases) <= set(Phase)
    assert all(seconds >= 0 for seconds in result.phases.values())
    assert sum(result.phases.values()) <= result.duration
    assert result.ping is not None and (result.ping.sent, result.ping.received) == (1, 1)
    assert result.ping_success is True
    assert result.ping_rtt is not None and 0 < result.ping_rtt < result.duration
    assert 0 < result.connect_duration < result.duration
    assert (result.tls_version, result.cert_expiry, result.subprotocol) == (None, None, None)


async def test_request_carries_a_wsmon_user_agent() -> None:
    async with servers.no_ping_server() as server:
        result = await run(server.url("/some/path?x=1"), CONNECT)
    assert result.success, result.error
    (request,) = server.requests
    assert request.target == "/some/path?x=1"
    assert request.headers["user-agent"].startswith("wsmon/")
    assert request.headers["host"] == f"{servers.HOST}:{server.port}"
    assert request.headers["sec-websocket-version"] == "13"
    assert "sec-websocket-extensions" not in request.headers  # no compression during a probe


async def test_several_pings(echo_server: Server) -> None:
    result = await run(echo_server.url(), PING.with_overrides(pings=5))
    assert result.success, result.error
    assert result.ping is not None
    assert (result.ping.sent, result.ping.received, result.ping.loss_ratio) == (5, 5, 0.0)
    assert 0 < result.ping.min <= result.ping.avg <= result.ping.max < result.duration
    assert result.ping.jitter >= 0


HOLD = 50 * MS  # how long the core is taken away from a ping's send


@pytest.mark.parametrize(("held", "timed", "untimed"), [(1, 1, 0), (MAX_RESENDS + 1, 0, 1)], ids=["once", "every time"])
async def test_a_ping_whose_send_was_preempted_is_sent_again(
    echo_server: Server, monkeypatch: pytest.MonkeyPatch, held: int, timed: int, untimed: int
) -> None:
    """The pong to a ping whose send time is in doubt proves the connection, not the round trip:
    the ping is sent again, up to MAX_RESENDS times; then its pong counts, untimed."""
    preempt_ping_sends(monkeypatch, *[HOLD] * held)
    monkeypatch.setattr(stamps, "tally", stamps.Tally())
    result = await run(echo_server.url())
    assert result.success, result.error
    assert result.ping is not None
    ping = result.ping
    assert (ping.sent, ping.received, len(ping.rtts), ping.untimed) == (1, 1, timed, untimed)
    assert stamps.tally.untimed_pings == held
    assert result.ping_success
    if timed:
        assert result.ping_rtt is not None and 0 < result.ping_rtt < HOLD  # the ping sent again, in time
    else:
        assert result.ping_rtt is None  # no round trip is reported rather than a wrong one


async def test_connect_module_succeeds_on_a_server_without_pings(no_ping_server: Server) -> None:
    result = await run(no_ping_server.url(), CONNECT)
    assert result.success, result.error
    assert result.up
    assert result.ping is None and not result.ping_success


async def test_ping_module_fails_on_a_server_without_pings(no_ping_server: Server) -> None:
    result = await run(no_ping_server.url(), PING, HOSTILE_TIMEOUT)
    assert_failed(result, Reason.PING_TIMEOUT)
    assert result.up
    assert not result.ping_success
    assert result.ping is not None and (result.ping.sent, result.ping.received) == (1, 0)
    assert result.duration >= HOSTILE_TIMEOUT


async def test_lost_pongs_count_as_loss(no_ping_server: Server) -> None:
    result = await run(no_ping_server.url(), PING.with_overrides(pings=3), HOSTILE_TIMEOUT)
    assert_failed(result, Reason.PING_TIMEOUT)
    assert result.ping is not None
    assert (result.ping.sent, result.ping.received, result.ping.loss_ratio) == (3, 0, 1.0)


async def test_snapshot_on_connect_is_drained(snapshot_server: Server) -> None:
    result = await run(snapshot_server.url(), PING)
    assert result.success, result.error
    assert result.ping is not None and result.ping.received == 1


async def test_snapshot_larger_than_max_message_size_does_not_fail_a_ping_probe(
    snapshot_server: Server,
) -> None:
    result = await run(snapshot_server.url(), PING.with_overrides(max_message_size=SNAPSHOT_SIZE // 64))
    assert result.success, result.error


# --- message steps ----------------------------------------------------------------------


async def test_json_rpc_step_extracts_the_block_number(jsonrpc_server: Server) -> None:
    step = Step(send=BLOCK_NUMBER, extract=JsonPath.parse("result"), value_name="block")
    result = await run(jsonrpc_server.url(), CONNECT.with_overrides(steps=(step,)))
    assert result.success, result.error
    (step_result,) = result.steps
    assert (step_result.index, step_result.success, step_result.failed_due_to_regex) == (0, True, False)
    assert (step_result.value_name, step_result.value) == ("block", 436.0)
    assert 0 < step_result.duration < result.duration


async def test_steps_with_regex_and_json_expectations(echo_server: Server) -> None:
    steps = (
        Step(send='{"result": {"number": "0x10"}}', expect=re.compile("number")),
        Step(send='{"result": {"number": "0x10"}}', expect_json=JsonPath.parse("$.result.number")),
        Step(send="fire and forget"),
    )
    result = await run(echo_server.url(), PING.with_overrides(steps=steps))
    assert result.success, result.error
    assert [s.success for s in result.steps] == [True, True, True]
    assert [s.value for s in result.steps] == [None, None, None]


async def test_regex_mismatch(echo_server: Server) -> None:
    step = Step(send="hello", expect=re.compile("^goodbye"))
    result = await run(echo_server.url(), CONNECT.with_overrides(steps=(step,)))
    assert_failed(result, Reason.MESSAGE_MISMATCH)
    assert result.error == "the answer does not match '^goodbye'"
    assert result.up
    (step_result,) = result.steps
    assert (step_result.success, step_result.failed_due_to_regex) == (False, True)


@pytest.mark.parametrize(
    ("send", "path", "error"),
    [
        ("not json", "result", "the answer is not JSON"),
        ('{"id": 1}', "result", "no number at result in the answer"),
        ('{"result": "abc"}', "result", "no number at result in the answer"),
    ],
)
async def test_extraction_failures(echo_server: Server, send: str, path: str, error: str) -> None:
    step = Step(send=send, extract=JsonPath.parse(path))
    result = await run(echo_server.url(), CONNECT.with_overrides(steps=(step,)))
    assert_failed(result, Reason.MESSAGE_MISMATCH)
    assert result.error == error


async def test_missing_json_path(echo_server: Server) -> None:
    step = Step(send='{"id": 1}', expect_json=JsonPath.parse("$.result"))
    result = await run(echo_server.url(), CONNECT.with_overrides(steps=(step,)))
    assert_failed(result, Reason.MESSAGE_MISMATCH)
    assert result.error == "the answer has no $.result"


async def test_message_too_large(echo_server: Server) -> None:
    step = Step(send="x" * 100, expect=re.compile("x"))
    result = await run(echo_server.url(), CONNECT.with_overrides(steps=(step,), max_message_size=10))
    assert_failed(result, Reason.MESSAGE_TOO_LARGE)
    assert result.steps[0].success is False


async def test_message_timeout() -> None:
    step = Step(send="hello", expect=re.compile("hello"))
    async with servers.no_ping_server(echo=False) as server:
        result = await run(server.url(), CONNECT.with_overrides(steps=(step,)), HOSTILE_TIMEOUT)
    assert_failed(result, Reason.MESSAGE_TIMEOUT)
    assert result.error == "timed out during message"
    assert result.up


async def test_timed_out_step_is_recorded_as_failed() -> None:
    steps = (Step(send="hello"), Step(send="hello", expect=re.compile("hello")))
    async with servers.no_ping_server(echo=False) as server:
        result = await run(server.url(), CONNECT.with_overrides(steps=steps), HOSTILE_TIMEOUT)
    assert result.reason is Reason.MESSAGE_TIMEOUT
    assert [(s.index, s.success) for s in result.steps] == [(0, True), (1, False)]


@pytest.mark.parametrize(
    ("answer", "error"),
    [
        pytest.param('{"result": "0x' + "f" * 300 + '"}', "no number at result in the answer", id="hex-too-large"),
        pytest.param('{"result": 1' + "0" * 400 + "}", "no number at result in the answer", id="int-too-large"),
        pytest.param("[" * 100_000, "the answer is not JSON", id="deeply-nested-json"),
    ],
)
async def test_hostile_answers_are_a_mismatch_not_a_crash(echo_server: Server, answer: str, error: str) -> None:
    step = Step(send=answer, extract=JsonPath.parse("result"))
    result = await run(echo_server.url(), CONNECT.with_overrides(steps=(step,)))
    assert_failed(result, Reason.MESSAGE_MISMATCH)
    assert result.error == error


# --- hostile peers: every probe ends by its deadline --------------------------------------


async def test_silent_server_times_out(silent_server: Server) -> None:
    result = await run(silent_server.url(), PING, HOSTILE_TIMEOUT)
    assert_failed(result, Reason.TIMEOUT)
    assert result.error == "timed out during upgrade"
    assert not result.up
    assert result.duration >= HOSTILE_TIMEOUT


async def test_silent_server_times_out_during_tls(silent_server: Server) -> None:
    url = silent_server.url().replace("ws://", "wss://", 1)
    result = await run(url, PING, HOSTILE_TIMEOUT)
    assert_failed(result, Reason.TIMEOUT)
    assert result.error == "timed out during tls"


async def test_dribbling_server_times_out(dribble_server: Server) -> None:
    result = await run(dribble_server.url(), PING, HOSTILE_TIMEOUT)
    assert_failed(result, Reason.TIMEOUT)
    assert result.error == "timed out during upgrade"


async def test_dribbling_server_with_a_long_timeout_succeeds() -> None:
    # The whole 101 answer takes ~100 × 5 ms to arrive: much longer than a single read.
    async with servers.dribble_server(interval=5 * MS) as server:
        result = await run(server.url(), PING, OK_TIMEOUT)
    assert result.success, result.error
    assert result.phases["upgrade"] > 300 * MS  # the dribble, measured where it happened


async def test_server_that_never_answers_close(never_close_server: Server) -> None:
    result = await run(never_close_server.url(), PING, HOSTILE_TIMEOUT)
    assert_failed(result, Reason.CLOSE_TIMEOUT)
    assert result.error == "timed out during close"
    assert result.up and result.ping_success


@pytest.mark.parametrize("status", [401, 404, 503])
async def test_http_status(status: int) -> None:
    async with servers.status_server(status) as server:
        result = await run(server.url(), PING, HOSTILE_TIMEOUT)
    assert_failed(result, Reason.HTTP_STATUS)
    assert result.status_code == status
    assert result.error == f"the server answered HTTP {status} instead of 101"
    assert not result.up


async def test_wrong_accept_key(bad_accept_server: Server) -> None:
    result = await run(bad_accept_server.url(), PING, HOSTILE_TIMEOUT)
    assert_failed(result, Reason.HANDSHAKE)
    assert result.error == "wrong Sec-WebSocket-Accept in the 101 answer"
    assert result.status_code == 101
    assert not result.up


async def test_abrupt_close_after_upgrade(abrupt_close_server: Server) -> None:
    result = await run(abrupt_close_server.url(), PING, HOSTILE_TIMEOUT)
    assert_failed(result, Reason.CLOSED)
    assert result.error.startswith("the server closed the connection")
    assert result.error.endswith("during ping")
    assert result.up


async def test_refused(refused_url: str) -> None:
    result = await run(refused_url, PING, HOSTILE_TIMEOUT)
    assert_failed(result, Reason.REFUSED)
    assert result.error.startswith("connect failed: ")
    assert not result.up
    assert "resolve" in result.phases


async def test_unknown_host() -> None:
    result = await run("ws://nonexistent.invalid/", PING, 2000 * MS)
    assert_failed(result, Reason.DNS)
    assert result.error.startswith("resolve failed: ")


@pytest.mark.parametrize(
    "url",
    [
        "http://example.com/",
        "example.com",
        "ws:///path-without-host",
        "ws://example.com:99999/",
    ],
)
async def test_invalid_target(url: str) -> None:
    result = await run(url, PING, HOSTILE_TIMEOUT)
    assert_failed(result, Reason.INVALID_TARGET)
    assert result.phases == {}


@pytest.mark.parametrize("url", ["ws://a..b/", "ws://" + "a" * 64 + ".example/"])
async def test_host_with_invalid_labels_is_an_invalid_target(url: str) -> None:
    result = await run(url, PING, HOSTILE_TIMEOUT)
    assert_failed(result, Reason.INVALID_TARGET)
    assert result.error == (
        "the target URL's host is not a valid host name; use a DNS name (letters, digits and hyphens, "
        "labels of 1 to 63 characters, 253 in all), an IPv4 address or a bracketed IPv6 address"
    )
    assert result.phases == {}  # refused before any lookup or connection


# --- TLS ----------------------------------------------------------------------------------


async def test_tls_with_an_untrusted_certificate(tls_server: Server) -> None:
    result = await run(tls_server.url(), PING, HOSTILE_TIMEOUT)
    assert_failed(result, Reason.TLS)
    assert result.error.startswith("tls failed: certificate verify failed")
    assert not result.up


async def test_tls_insecure_skip_verify(tls_server: Server) -> None:
    module = PING.with_overrides(tls=TLSOptions(insecure_skip_verify=True))
    result = await run(tls_server.url(), module)
    assert result.success, result.error
    assert result.tls_version == "TLSv1.3"
    assert result.cert_expiry is not None and result.cert_expiry > time.time()
    assert {"resolve", "connect", "tls", "upgrade", "close"} <= set(result.phases)
    assert sum(result.phases.values()) <= result.duration


async def test_tls_with_ca_file(tls_server: Server, tls_certificates: TLSCertificates) -> None:
    module = PING.with_overrides(tls=TLSOptions(ca_file=tls_certificates.ca_file))
    result = await run(tls_server.url(), module)
    assert result.success, result.error
    assert result.tls_version == "TLSv1.3"


async def test_tls_server_name_mismatch(tls_server: Server, tls_certificates: TLSCertificates) -> None:
    module = PING.with_overrides(tls=TLSOptions(ca_file=tls_certificates.ca_file, server_name="not-the-server.example"))
    result = await run(tls_server.url(), module, HOSTILE_TIMEOUT)
    assert_failed(result, Reason.TLS)


# --- secrets --------------------------------------------------------------------------------

CANARY = "c4nary-s3cret-t0ken-91f2"


def _canary_urls(base: str) -> list[str]:
    scheme, rest = base.split("://", 1)
    return [
        f"{base}{CANARY}",  # path
        f"{base}v1/{CANARY}/ws",  # one segment of the path
        f"{base}?apikey={CANARY}",  # query
        f"{scheme}://user:{CANARY}@{rest}",  # userinfo password
    ]


@pytest.mark.parametrize("where", ["path", "segment", "query", "userinfo"])
@pytest.mark.parametrize("kind", ["refused", "dns", "silent", "http_401", "bad_accept", "no_pong", "tls", "closed"])
async def test_canary_secret_never_in_the_error(
    kind: str, where: str, refused_url: str, tls_certificates: TLSCertificates
) -> None:
    index = ["path", "segment", "query", "userinfo"].index(where)
    async with _failing_server(kind, tls_certificates) as base:
        base = base or refused_url
        url = _canary_urls(base)[index]
        log = ProbeLog(target="redacted", keep=True, emit=False)
        result = await run(url, PING, HOSTILE_TIMEOUT, log=log)
    assert not result.success
    assert result.error
    assert CANARY not in result.error
    assert CANARY not in repr(result.error)
    assert CANARY not in repr(result)
    assert not [line for line in log.lines if CANARY in line]


@contextlib.asynccontextmanager
async def _failing_server(kind: str, certificates: TLSCertificates) -> AsyncIterator[str | None]:
    """The base URL of a server that fails a probe in the way ``kind`` says (None: refused)."""
    if kind == "refused":
        yield None
        return
    if kind == "dns":
        yield "ws://nonexistent.invalid/"
        return
    factories: dict[str, Callable[[], contextlib.AbstractAsyncContextManager[Server]]] = {
        "silent": servers.silent_server,
        "http_401": lambda: servers.status_server(401),
        "bad_accept": servers.bad_accept_server,
        "no_pong": servers.no_ping_server,
        "tls": lambda: servers.tls_server(certificates),
        "closed": servers.abrupt_close_server,
    }
    async with factories[kind]() as server:
        yield server.url()


async def test_canary_secret_never_in_an_invalid_target_error() -> None:
    url = f"wss://user:{CANARY}/x@example.com/"  # a password with an unescaped "/"
    result = await run(url, PING, HOSTILE_TIMEOUT)
    assert result.reason is Reason.INVALID_TARGET
    assert CANARY not in result.error


async def test_invalid_target_errors_do_not_quote_the_url() -> None:
    result = await run(f"https://example.com/{CANARY}?key={CANARY}", PING, HOSTILE_TIMEOUT)
    assert result.reason is Reason.INVALID_TARGET
    assert result.error == "unsupported scheme https://: the target must be a ws:// or wss:// URL"
    assert CANARY not in json.dumps(result.error)


async def test_the_module_subprotocols_are_offered(no_ping_server: Server) -> None:
    module = Module(name="gql", ping=False, subprotocols=("graphql-ws", "graphql-transport-ws"))
    result = await run(no_ping_server.url("/"), module)
    assert result.success, result.error
    offered = no_ping_server.requests[0].headers["sec-websocket-protocol"]
    assert offered == "graphql-ws, graphql-transport-ws"
