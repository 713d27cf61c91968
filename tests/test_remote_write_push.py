"""``[[push]] kind = "remote_write"`` against the real receivers: Prometheus' own
(``--web.enable-remote-write-receiver``, the series queried back) and vmagent's ``/api/v1/write``
(into VictoriaMetrics, exported back); and the retry rule (4xx but 429: not retried)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import httpx

from tests.realservers import needs, prom_query, prometheus, until, victoria_metrics, vm_export, vmagent, wsmon_serve
from tests.servers import HOST, MS, Peer, Server, go_duration, raw_server
from tests.test_push_integration import push_table, write_config
from wsmon.config.push import parse_push
from wsmon.continuous.push import Pusher
from wsmon.metrics.exporter import ExporterMetrics


@needs("prometheus")
async def test_prometheus_receives_the_series(tmp_path: Path, echo_server: Server) -> None:
    async with prometheus(tmp_path, [], receiver=True) as prom:
        config = write_config(
            tmp_path / "targets.toml",
            echo_server,
            push_table(f"{prom.base}/api/v1/write", 'kind = "remote_write"', 'extra_labels = { env = "test" }'),
        )
        async with (
            wsmon_serve(tmp_path, config) as _wsmon,
            httpx.AsyncClient(trust_env=False, timeout=5000 * MS) as client,
        ):

            async def landed() -> list[tuple[dict[str, str], float]]:
                return await prom_query(client, prom, 'probe_success{job="wsmon",env="test"}')

            results = await until(landed, 15_000 * MS, "probe_success in Prometheus")
            by_target = {labels["target"]: value for labels, value in results}
            assert by_target == {"echo-probe": 1.0, "echo-persistent": 1.0}
            buckets = await prom_query(
                client, prom, 'wsmon_ping_pong_duration_seconds_bucket{target="echo-persistent",le="+Inf"}'
            )
            assert len(buckets) == 1 and buckets[0][1] >= 1
            counters = await prom_query(client, prom, 'wsmon_probes_total{target="echo-probe",result="success"}')
            assert len(counters) == 1 and counters[0][1] >= 1


@needs("victoria-metrics", "vmagent")
async def test_vmagent_forwards_the_series_to_victoria_metrics(tmp_path: Path, echo_server: Server) -> None:
    async with victoria_metrics(tmp_path) as vm, vmagent(tmp_path, vm.base, []) as agent:
        config = write_config(
            tmp_path / "targets.toml",
            echo_server,
            push_table(f"{agent.base}/api/v1/write", 'kind = "remote_write"', 'job = "ws"'),
        )
        async with (
            wsmon_serve(tmp_path, config) as _wsmon,
            httpx.AsyncClient(trust_env=False, timeout=5000 * MS) as client,
        ):

            async def exported() -> list[str]:
                series, _ = await vm_export(client, vm, '{__name__="probe_success",job="ws"}')
                return sorted(s.labels["target"] for s in series)

            assert await until(exported, 15_000 * MS, "probe_success in VictoriaMetrics") == [
                "echo-persistent",
                "echo-probe",
            ]


class Answers:
    """An HTTP server answering every request with one status, counting them."""

    def __init__(self, status: int) -> None:
        self.status, self.requests = status, 0

    async def __call__(self, peer: Peer) -> None:
        while True:
            head = await peer.reader.readuntil(b"\r\n\r\n")
            length = next(
                (
                    int(line.split(b":")[1])
                    for line in head.split(b"\r\n")
                    if line.lower().startswith(b"content-length")
                ),
                0,
            )
            await peer.reader.readexactly(length)
            self.requests += 1
            await peer.send(f"HTTP/1.1 {self.status} X\r\nContent-Length: 0\r\n\r\n".encode())


async def _body(stamp: int, labels: tuple[tuple[str, str], ...]) -> tuple[bytes, int]:
    return b"", 0


async def _no_text() -> AsyncIterator[bytes]:
    yield b""


async def count_requests(status: int) -> int:
    """Requests a remote_write pusher (interval 2 s) sends in 3.5 s to a server answering ``status``."""
    answers = Answers(status)
    async with raw_server(answers) as server:
        table = {
            "kind": "remote_write",
            "url": f"http://{HOST}:{server.port}/api/v1/write",
            "interval": go_duration(2000 * MS),
            "timeout": go_duration(500 * MS),
        }
        pusher = Pusher(parse_push(table, 1, "t.toml", env={}), _no_text, ExporterMetrics(), remote_write=_body)
        pusher.start()
        await asyncio.sleep(3500 * MS)
        await pusher.stop(final=False)
    return answers.requests


async def test_a_refused_push_waits_for_the_next_interval() -> None:
    assert await count_requests(400) == 1  # at 2 s; no retry before the next interval (4 s)


async def test_too_many_requests_is_retried_sooner() -> None:
    assert await count_requests(429) >= 2  # at 2 s, then again within 0.5–1 s
