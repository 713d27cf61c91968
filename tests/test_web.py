"""``/probe``, ``/metrics`` and the health endpoints, over real HTTP against real servers."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import quote

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests import servers
from tests.exporter import RunningExporter, running_exporter
from tests.servers import MS
from wsmon.config.file import parse_config
from wsmon.web.limits import WebLimits, default_max_probes

SEED_SIX = [
    "probe_success",
    "probe_duration_seconds",
    "probe_websocket_up",
    "probe_websocket_connection_duration_seconds",
    "probe_websocket_ping_pong_success",
    "probe_websocket_ping_pong_duration_seconds",
]
SEED_HELP = {
    "probe_success": "Displays whether or not the probe was a success",
    "probe_duration_seconds": "Returns how long the probe took to complete in seconds",
    "probe_websocket_up": "Displays whether the WebSocket connection was successful",
    "probe_websocket_connection_duration_seconds": "Duration of the WebSocket connection establishment",
    "probe_websocket_ping_pong_success": "Displays whether the WebSocket ping-pong was successful",
    "probe_websocket_ping_pong_duration_seconds": "Duration between ping and pong messages",
}


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def value(text: str, name: str, **labels: str) -> float:
    """The sample with this name and exactly these labels; AssertionError naming it if missing."""
    found = samples(text)
    key = (name, tuple(sorted(labels.items())))
    assert key in found, f"no sample {name}{labels}"
    return found[key]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
async def exporter() -> AsyncIterator[RunningExporter]:
    async with running_exporter() as running:
        yield running


async def test_probe_success_has_the_seed_six_first_with_their_help(exporter: RunningExporter) -> None:
    response = await exporter.client.get("/probe", params={"target": exporter.echo_url})
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
    families = list(text_string_to_metric_families(response.text))
    assert [f.name for f in families[:6]] == SEED_SIX
    for family in families[:6]:
        assert family.documentation == SEED_HELP[family.name]
    text = response.text
    assert value(text, "probe_success") == 1
    assert value(text, "probe_websocket_up") == 1
    assert value(text, "probe_websocket_ping_pong_success") == 1
    assert value(text, "probe_websocket_status_code") == 101
    duration = value(text, "probe_duration_seconds")
    phases = {
        dict(labels)["phase"]: v
        for (name, labels), v in samples(text).items()
        if name == "probe_websocket_duration_seconds"
    }
    assert set(phases) == {"resolve", "connect", "upgrade", "ping", "close"}
    assert 0 < sum(phases.values()) <= duration < 5000 * MS
    assert 0 < value(text, "probe_websocket_ping_pong_duration_seconds") <= phases["ping"]
    assert 0 < value(text, "probe_websocket_connection_duration_seconds") <= duration


async def test_probe_failure_reports_reason(exporter: RunningExporter) -> None:
    response = await exporter.client.get("/probe", params={"target": f"ws://127.0.0.1:{free_port()}/"})
    text = response.text
    assert response.status_code == 200
    assert value(text, "probe_success") == 0
    assert value(text, "probe_websocket_up") == 0
    assert value(text, "probe_websocket_failure_info", reason="refused") == 1
    assert ("probe_websocket_connection_duration_seconds", ()) not in samples(text)


async def test_connect_module_exports_no_ping_figures(exporter: RunningExporter) -> None:
    response = await exporter.client.get("/probe", params={"target": exporter.echo_url, "module": "connect"})
    found = samples(response.text)
    assert found[("probe_success", ())] == 1
    assert ("probe_websocket_ping_pong_success", ()) not in found


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({}, "missing target parameter: use ?target=wss://host/path or a configured target name\n"),
        ({"target": ""}, "missing target parameter: use ?target=wss://host/path or a configured target name\n"),
        ({"target": "http://example.com/x"}, "unsupported scheme http://: the target must be a ws:// or wss:// URL\n"),
        ({"target": "example.com"}, "unsupported scheme no scheme: the target must be a ws:// or wss:// URL\n"),
        ({"target": "ws://[::1/x"}, "unparsable target URL (invalid IPv6 address)\n"),
        ({"target": "ws:///path"}, "the target URL has no host\n"),
        (
            {"target": "ws://127.0.0.1/", "module": "nope"},
            "unknown module 'nope': known modules are connect, ping\n",
        ),
    ],
)
async def test_bad_requests_get_400_with_one_line(
    exporter: RunningExporter, params: dict[str, str], message: str
) -> None:
    response = await exporter.client.get("/probe", params=params)
    assert response.status_code == 400
    assert response.text == message


@pytest.mark.parametrize(("header", "expected"), [("1.5", 1.0), ("1.500", 1.0), ("0.3", 0.3), ("60", 10.0)])
async def test_timeout_is_the_smallest_of_flag_module_and_scrape_header(
    exporter: RunningExporter, header: str, expected: float
) -> None:
    response = await exporter.client.get(
        "/probe",
        params={"target": exporter.echo_url},
        headers={"X-Prometheus-Scrape-Timeout-Seconds": header},
    )
    assert value(response.text, "probe_timeout_seconds") == pytest.approx(expected)


async def test_module_timeout_caps_the_flag() -> None:
    config = parse_config({"modules": {"quick": {"timeout": "2s"}}}, "test.toml")
    async with running_exporter(config) as running:
        response = await running.client.get("/probe", params={"target": running.echo_url, "module": "quick"})
        assert value(response.text, "probe_timeout_seconds") == 2.0


async def test_blackbox_names_when_the_settings_ask_for_them() -> None:
    """A dashboard written for blackbox_exporter's websocket prober reads wsmon's /probe."""
    config = parse_config({"settings": {"series": {"blackbox": True}}}, "test.toml")
    async with running_exporter(config) as running:
        text = (await running.client.get("/probe", params={"target": running.echo_url})).text
        assert value(text, "probe_websocket_connection_upgraded") == 1.0
        phases = {labels["phase"] for (name, labels) in _labelled(text) if name == "probe_websocket_duration_seconds"}
        assert phases == {"resolve", "connect", "processing", "ping", "close"}  # ws://: no TLS in processing
        assert value(text, "probe_dns_lookup_time_seconds") >= 0.0
    async with running_exporter() as running:  # by default, wsmon's own names only
        text = (await running.client.get("/probe", params={"target": running.echo_url})).text
        assert "probe_websocket_connection_upgraded" not in text
        phases = {labels["phase"] for (name, labels) in _labelled(text) if name == "probe_websocket_duration_seconds"}
        assert "processing" not in phases and "upgrade" in phases


def _labelled(text: str) -> list[tuple[str, dict[str, str]]]:
    return [(name, dict(labels)) for name, labels in samples(text)]


async def test_bad_scrape_header_is_rejected(exporter: RunningExporter) -> None:
    response = await exporter.client.get(
        "/probe", params={"target": exporter.echo_url}, headers={"X-Prometheus-Scrape-Timeout-Seconds": "soon"}
    )
    assert response.status_code == 400
    assert response.text.startswith("bad X-Prometheus-Scrape-Timeout-Seconds header:")


async def test_openmetrics_when_the_scraper_prefers_it(exporter: RunningExporter) -> None:
    accept = "application/openmetrics-text;version=1.0.0;q=0.9,text/plain;version=0.0.4;q=0.5,*/*;q=0.1"
    response = await exporter.client.get("/probe", params={"target": exporter.echo_url}, headers={"Accept": accept})
    assert response.headers["content-type"].startswith("application/openmetrics-text")
    assert response.text.endswith("# EOF\n")
    text_first = "text/plain;version=0.0.4;q=1,application/openmetrics-text;version=1.0.0;q=0.5"
    response = await exporter.client.get("/probe", params={"target": exporter.echo_url}, headers={"Accept": text_first})
    assert response.headers["content-type"].startswith("text/plain")


async def test_debug_shows_the_probe_log_then_the_metrics(exporter: RunningExporter) -> None:
    response = await exporter.client.get("/probe", params={"target": exporter.echo_url, "debug": "true"})
    logs, _, metrics = response.text.partition("\n\nMetrics that would have been returned:\n")
    assert logs.startswith("Logs for the probe:\n")
    assert "upgrade done" in logs
    assert "pong" in logs
    assert value(metrics, "probe_success") == 1


async def test_metrics_count_probes_by_module_and_result(exporter: RunningExporter) -> None:
    await exporter.client.get("/probe", params={"target": exporter.echo_url})
    await exporter.client.get("/probe", params={"target": f"ws://127.0.0.1:{free_port()}/", "module": "connect"})
    text = (await exporter.client.get("/metrics")).text
    assert value(text, "wsmon_exporter_probes_total", module="ping", result="success") == 1
    assert value(text, "wsmon_exporter_probes_total", module="connect", result="failure") == 1
    assert value(text, "wsmon_exporter_probe_duration_seconds_count", module="ping") == 1
    assert value(text, "wsmon_probes_in_flight") == 0
    assert "process_cpu_seconds_total" in text


async def test_health_endpoints_and_index(exporter: RunningExporter) -> None:
    for path in ("/-/healthy", "/-/ready"):
        response = await exporter.client.get(path)
        assert response.status_code == 200
    index = (await exporter.client.get("/")).text
    assert 'href="/metrics"' in index
    assert "/probe?target=ws://127.0.0.1:" in index


async def test_a_thousand_concurrent_probes_never_mix() -> None:
    """Half the probes succeed, half are refused; each answer must match its own target.

    The echo endpoint, the exporter and the 1,000 clients share one event loop here, so the
    probes get a deadline that such a crowd cannot exhaust: this test is about mixing, not speed.
    """
    refused = f"ws://127.0.0.1:{free_port()}/"
    async with running_exporter(timeout=60_000 * MS) as exporter:

        async def one(i: int) -> tuple[int, str]:
            target = exporter.echo_url if i % 2 else refused
            return i, await exporter.get_body(f"/probe?target={quote(target, safe='')}&module=ping")

        answers = await asyncio.gather(*(one(i) for i in range(1000)))
    for i, text in answers:
        found = samples(text)
        assert found[("probe_success", ())] == i % 2, f"probe {i} got another probe's answer: {text}"
        assert (("probe_websocket_failure_info", (("reason", "refused"),)) in found) == (i % 2 == 0)


# --- a module's credentials go only where its operator named -------------------------------

PROBE_TOKEN = "pr0be-module-t0ken-do-not-leak"


async def _recording(peer: servers.Peer) -> None:
    await peer.upgrade()
    await peer.serve_frames()


async def test_a_module_with_credentials_only_probes_its_own_targets(tmp_path: Path) -> None:
    token_file = tmp_path / "token"
    token_file.write_text(PROBE_TOKEN + "\n")
    async with servers.raw_server(_recording) as node:
        config = parse_config(
            {
                "modules": {
                    "secret": {"bearer_token_file": str(token_file)},
                    "fenced": {"bearer_token_file": str(token_file), "allow": [f"ws://127.0.0.1:{node.port}/ok/*"]},
                    "listed": {"allow": []},  # no credentials, but an allow list: the same rule
                    "open": {"headers": {"Origin": "https://app.example"}},
                },
                "targets": [
                    {"name": "named", "url": node.url("/named"), "module": "secret", "mode": "scrape"},
                    {"name": "plain", "url": node.url("/plain"), "mode": "scrape"},
                ],
            },
            "test.toml",
        )
        async with running_exporter(config) as exporter:

            async def probe(target: str, module: str | None = None) -> httpx.Response:
                params = {"target": target, **({"module": module} if module else {})}
                return await exporter.client.get("/probe", params=params)

            refused = [
                (node.url("/anywhere"), "secret"),  # a URL nobody named for the module
                ("plain", "secret"),  # a configured target, but of another module
                (node.url("/named"), "secret"),  # the configured URL typed in, not the name
                (node.url("/elsewhere"), "fenced"),
                (node.url("/ok/a/b"), "fenced"),  # '*' is one segment
                (node.url("/ok/../x"), "fenced"),
                (node.url("/ok/x"), "listed"),
            ]
            for target, refused_module in refused:
                response = await probe(target, refused_module)
                assert response.status_code == 403, (target, refused_module, response.text)
                assert response.text.count("\n") == 1 and PROBE_TOKEN not in response.text
                assert response.text.startswith(f"module {refused_module!r} "), response.text
            assert node.requests == []  # nothing was sent anywhere, credentials least of all
            assert (await probe(node.url("/anywhere"), "secret")).text == (
                "module 'secret' carries credentials and only probes its own targets: a configured target "
                "that uses it, or a URL matching its allow patterns\n"
            )

            allowed = [("named", None), ("named", "secret"), (node.url("/ok/x"), "fenced"), (node.url("/x"), "open")]
            for target, module in allowed:
                response = await probe(target, module)
                assert response.status_code == 200, (target, module, response.text)
                assert value(response.text, "probe_success") == 1, (target, module)
    sent = [(r.target, r.headers.get("authorization")) for r in node.requests]
    assert sent == [
        ("/named", f"Bearer {PROBE_TOKEN}"),
        ("/named", f"Bearer {PROBE_TOKEN}"),
        ("/ok/x", f"Bearer {PROBE_TOKEN}"),
        ("/x", None),
    ]


# --- bounded /probe work -----------------------------------------------------------------------


async def test_probes_beyond_max_probes_are_answered_503_at_once() -> None:
    """The excess is refused with Retry-After, never run with a wrong failure reason."""
    config = parse_config({"modules": {"quick": {"timeout": "1s"}}}, "test.toml")
    async with servers.silent_server() as hanging, running_exporter(config, limits=WebLimits(max_probes=5)) as exporter:
        target = quote(hanging.url("/"), safe="")

        async def one() -> tuple[int, str, str | None]:
            response = await exporter.client.get(f"/probe?target={target}&module=quick")
            return response.status_code, response.text, response.headers.get("retry-after")

        began = asyncio.get_running_loop().time()
        answers = await asyncio.gather(*(one() for _ in range(20)))
        elapsed = asyncio.get_running_loop().time() - began
    ran = [text for status, text, _ in answers if status == 200]
    refused = [(text, retry) for status, text, retry in answers if status == 503]
    assert len(ran) == 5 and len(refused) == 15, [status for status, _, _ in answers]
    for text in ran:
        assert value(text, "probe_websocket_failure_info", reason="timeout") == 1
    for text, retry in refused:
        assert text == "too many probes at once (--web.max-probes 5): try again later\n"
        assert retry == "1"
    assert elapsed < 5  # the refused ones did not wait for a slot


def test_web_limits_default_to_fractions_of_the_open_files_limit() -> None:
    assert default_max_probes(200) == 25
    assert default_max_probes(1024) == 128
    assert default_max_probes(3) == 1
    limits = WebLimits.for_open_files(200)
    assert (limits.max_probes, limits.max_connections, limits.max_connections_per_client) == (25, 50, 25)
    assert limits.backlog == 25
    assert WebLimits.for_open_files(200, max_probes=7, max_connections_per_client=9).max_probes == 7
