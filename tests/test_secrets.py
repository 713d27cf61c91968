"""Canary secrets in URL paths, queries, userinfo and headers never reach any output."""

from __future__ import annotations

import asyncio
import logging
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import pytest
import structlog

from tests.exporter import RunningExporter, running_exporter
from tests.servers import MS, go_duration
from wsmon.config.file import Config, parse_config
from wsmon.logs import configure_logging
from wsmon.redact import secrets

CANARY = "CANARY-s3cr3t-7f1e9a2b4c"
HEADER_CANARY = "HDRCANARY-0d9c8b7a6f"
FILE_CANARY = "FILECANARY-5e4d3c2b1a"


def canary_targets(exporter: RunningExporter, refused_port: int) -> dict[str, bool]:
    """Targets with the canary in every place a URL can carry it → whether a probe succeeds."""
    base = f"127.0.0.1:{exporter.port}"
    return {
        f"ws://{base}/ws/echo/{CANARY}": False,  # token as a path segment (the server answers 403)
        f"ws://{base}/{CANARY}": False,
        f"ws://{base}/ws/echo?apikey={CANARY}": True,  # token in the query
        f"ws://user:{CANARY}@{base}/ws/echo": True,  # password in userinfo
        f"ws://127.0.0.1:{refused_port}/{CANARY}?key={CANARY}": False,  # refused
        f"wss://{base}/ws/echo/{CANARY}": False,  # TLS to a plain server: tls failure
    }


def assert_clean(text: str) -> None:
    for canary in (CANARY, HEADER_CANARY, FILE_CANARY):
        assert canary not in text


@pytest.fixture
def secret_config(tmp_path: Path) -> Config:
    token_file = tmp_path / "token"
    token_file.write_text(FILE_CANARY + "\n")
    return parse_config(
        {
            "modules": {
                "hdr": {"headers": {"Authorization": "Bearer ${WSMON_TEST_TOKEN}"}},
                "filetoken": {"bearer_token_file": str(token_file)},
                "basic": {"basic_auth": {"username": "u", "password": "${WSMON_TEST_TOKEN}"}},
            }
        },
        "test.toml",
        env={"WSMON_TEST_TOKEN": HEADER_CANARY},
    )


@pytest.fixture
def saved_logging() -> Iterator[None]:
    """The logging configuration of before the test, back after it."""
    saved = structlog.get_config()
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    chatty = {name: logging.getLogger(name).level for name in ("uvicorn.error", "httpx", "httpcore")}
    try:
        yield
    finally:
        structlog.configure(**saved)
        root.handlers[:] = handlers
        root.setLevel(level)
        for name, chatty_level in chatty.items():
            logging.getLogger(name).setLevel(chatty_level)


@pytest.mark.usefixtures("saved_logging")
async def test_no_canary_in_probe_output_metrics_or_logs(
    secret_config: Config, capfd: pytest.CaptureFixture[str], unused_tcp_port: int
) -> None:
    configure_logging(logging.DEBUG)  # into the sys.stderr of the moment: capfd's, closed after the test
    structlog.configure(cache_logger_on_first_use=False)  # so no logger may keep it
    async with running_exporter(secret_config, debug=True) as exporter:
        seen: list[str] = []
        for target in canary_targets(exporter, unused_tcp_port):
            for module in ("ping", "hdr", "filetoken", "basic"):
                for debug in ("true", "false"):
                    response = await exporter.client.get(
                        "/probe", params={"target": target, "module": module, "debug": debug}
                    )
                    seen.append(response.text)
        seen.append((await exporter.client.get("/metrics")).text)
    logged = capfd.readouterr()
    assert any('reason="http_status"' in s for s in seen)
    assert any("probe_success 1.0" in s for s in seen)
    assert any('reason="refused"' in s for s in seen)
    assert any("upgrade done" in s for s in seen)
    assert "upgrade done" in logged.err  # --debug logged the phases
    for text in [*seen, logged.out, logged.err]:
        assert_clean(text)


async def _run_check(*args: str) -> tuple[int, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "wsmon",
        "check",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        env={**os.environ, "WSMON_TEST_TOKEN": HEADER_CANARY},
    )
    output, _ = await process.communicate()
    return await process.wait(), output.decode()


async def test_no_canary_in_check_output(unused_tcp_port: int) -> None:
    async with running_exporter() as exporter:
        for target, up in canary_targets(exporter, unused_tcp_port).items():
            for extra in ([], ["--json"], ["--debug", "--count", "2", "--interval", go_duration(10 * MS)]):
                code, output = await _run_check(target, "-H", f"Authorization: Bearer {HEADER_CANARY}", *extra)
                assert code == (0 if up else 1), (target, extra, output)
                assert_clean(output)
                assert "****" in output


async def test_no_canary_in_usage_errors() -> None:
    code, output = await _run_check(f"http://example.com/{CANARY}")
    assert code == 2
    assert output.startswith("wsmon: error: unsupported scheme http://")
    assert_clean(output)
    code, output = await _run_check(f"ws://[::1/{quote(CANARY)}")
    assert code == 2
    assert_clean(output)


async def test_probed_urls_do_not_blind_later_log_lines(
    capfd: pytest.CaptureFixture[str], unused_tcp_port: int
) -> None:
    """A URL path was registered as a secret at every /probe: ``/probe?target=ws://h/failed``
    made every later "failed" in the log print "****"."""
    configure_logging(logging.INFO)
    try:
        async with running_exporter() as exporter:
            for path in ("failed", "warning", "2026-12-0"):
                await exporter.client.get("/probe", params={"target": f"ws://127.0.0.1:{unused_tcp_port}/{path}"})
            structlog.get_logger("wsmon").warning("login failed", seen="warning", day="2026-12-01")
        logged = capfd.readouterr()
    finally:
        with capfd.disabled():  # back on the session's stderr, not on capfd's soon closed one
            configure_logging(logging.WARNING)
    assert "login failed" in logged.err and "seen=warning" in logged.err and "day=2026-12-01" in logged.err


async def test_probed_urls_do_not_grow_the_registry(unused_tcp_port: int) -> None:
    """100 /probe requests with 60 KB paths kept 24 MB in the registry for good."""
    async with running_exporter() as exporter:
        before = len(secrets), secrets.size
        for i in range(50):
            target = f"ws://127.0.0.1:{unused_tcp_port}/{i:03d}{'x' * 8_000}?key={CANARY}{i}"
            response = await exporter.client.get("/probe", params={"target": target})
            assert 'reason="refused"' in response.text
            assert_clean(response.text)
        assert (len(secrets), secrets.size) == before
