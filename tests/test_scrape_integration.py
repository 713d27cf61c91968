"""wsmon's ``/probe`` scraped by a real vmagent (as a ``VMProbe`` configures it) and a real
Prometheus (blackbox_exporter-style relabeling), read back from the TSDB (issue 4).

Two kinds of targets: WebSocket URLs (``instance`` is the URL), and names of targets configured
in wsmon (``/probe?target=<name>``), whose URLs carry a canary token from ``${VAR}``: the token
must never reach the scraper, the TSDB or a log.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests import servers
from tests.realservers import (
    Running,
    Series,
    free_port,
    needs,
    prom_query,
    prometheus,
    until,
    victoria_metrics,
    vm_export,
    vmagent,
    wsmon_serve,
)
from tests.servers import MS, go_duration

JOB = "websocket"
CANARY = "CANARY-token-5f0c1e9a"
PROBE_NAMES = ("probe_success", "probe_websocket_up", "probe_websocket_ping_pong_success")
SCRAPE_INTERVAL = SCRAPE_TIMEOUT = 1000 * MS
TIMEOUT_OFFSET = 500 * MS  # wsmon serve's --timeout-offset: what it leaves the scraper
HTTP_TIMEOUT = 5000 * MS

Found = dict[tuple[str, str], tuple[dict[str, str], float]]  # (name, instance) → (labels, value)


def probe_job(prober: str, targets: list[str], module: str = "ping") -> dict[str, Any]:
    """The scrape config a ``VMProbe`` generates for static targets (the blackbox_exporter
    README's, for Prometheus, is the same relabeling): the target becomes ``?target=`` and
    ``instance``, the address becomes the prober's."""
    return {
        "job_name": f"probe/monitoring/{JOB}",
        "metrics_path": "/probe",
        "params": {"module": [module]},
        "scrape_interval": go_duration(SCRAPE_INTERVAL),
        "scrape_timeout": go_duration(SCRAPE_TIMEOUT),
        "static_configs": [{"targets": targets}],
        "relabel_configs": [
            {"source_labels": ["__address__"], "target_label": "__param_target"},
            {"source_labels": ["__param_target"], "target_label": "instance"},
            {"target_label": "__address__", "replacement": prober},
            {"target_label": "job", "replacement": JOB},
        ],
    }


Scraper = Callable[[str, list[str]], contextlib.AbstractAsyncContextManager[Running]]


@dataclass
class Setup:
    wsmon: Running
    scraper: Running
    targets: list[str]  # what the scraper is told to probe, and so each series' instance
    secret: str | None  # a token inside wsmon's config, if the targets are names


@contextlib.asynccontextmanager
async def probed(tmp_path: Path, kind: str, scraper: Scraper) -> AsyncIterator[Setup]:
    """Two echo servers, a wsmon to probe them by URL or by configured name, and a scraper of
    wsmon's ``/probe`` (``scraper(wsmon's host:port, targets)``).

    The scraper starts first: Prometheus sends new targets to its scrape loops every 5 s, so
    that wait and wsmon's start overlap.
    """
    async with servers.echo_server() as one, servers.echo_server() as two:
        port = free_port()
        if kind == "urls":
            config, env, secret = None, None, None
            targets = [one.url("/"), two.url("/")]
        else:
            config = tmp_path / "targets.toml"
            config.write_text(
                # A token in the path of one, in the query of the other; both from the environment.
                f'[[targets]]\nname = "node1"\nurl = "{one.url("/")}${{NODE_TOKEN}}"\nmode = "persistent"\n'
                f'[[targets]]\nname = "node2"\nurl = "{two.url("/")}?apikey=${{NODE_TOKEN}}"\n'
                f'interval = "{go_duration(60_000 * MS)}"\n'
            )
            env, secret = {"NODE_TOKEN": CANARY}, CANARY
            targets = ["node1", "node2"]
        async with (
            scraper(f"{servers.HOST}:{port}", targets) as scraping,
            wsmon_serve(tmp_path, config, "--timeout-offset", go_duration(TIMEOUT_OFFSET), env=env, port=port) as wsmon,
        ):
            yield Setup(wsmon, scraping, targets, secret)


def check_probe_series(found: Found, targets: list[str]) -> None:
    """``found``: (name, instance) → (labels without __name__, value)."""
    for instance in targets:
        labels = {"job": JOB, "instance": instance}
        for name in PROBE_NAMES:
            assert found[name, instance] == (labels, 1.0), (name, instance)
        rtt_labels, rtt = found["probe_websocket_ping_pong_duration_seconds", instance]
        assert rtt_labels == labels
        assert 0 < rtt < SCRAPE_TIMEOUT - TIMEOUT_OFFSET, rtt  # the probe's deadline
        assert found["up", instance] == (labels, 1.0)


def by_name_and_instance(series: list[Series]) -> Found:
    return {(s.name, s.labels.get("instance", "")): (s.labels, s.last) for s in series}


def all_succeeded(found: Found, targets: list[str]) -> Found | None:
    """``found`` once every target's probe_success is 1; AssertionError naming one that has none."""
    for target in targets:
        assert ("probe_success", target) in found, f"no probe_success for {target} yet"
    return found if all(found["probe_success", target][1] == 1 for target in targets) else None


@needs("victoria-metrics", "vmagent")
@pytest.mark.parametrize("kind", ["urls", "names"])
async def test_vmagent_scrapes_probe_like_a_vmprobe(tmp_path: Path, kind: str) -> None:
    async with victoria_metrics(tmp_path) as vm:

        def scraper(prober: str, targets: list[str]) -> contextlib.AbstractAsyncContextManager[Running]:
            return vmagent(tmp_path, vm.base, [probe_job(prober, targets)])

        async with (
            probed(tmp_path, kind, scraper) as setup,
            httpx.AsyncClient(trust_env=False, timeout=HTTP_TIMEOUT) as client,
        ):

            async def arrived() -> Found | None:
                series, _ = await vm_export(client, vm, f'{{job="{JOB}"}}')
                return all_succeeded(by_name_and_instance(series), setup.targets)

            found = await until(arrived, 15_000 * MS, "probe_success of both targets in VictoriaMetrics")
            _, everything = await vm_export(client, vm)
            check_probe_series(found, setup.targets)
            assert {instance for _, instance in found} == set(setup.targets)
            if setup.secret is not None:
                assert setup.secret not in everything
                assert setup.secret not in setup.wsmon.log()
            assert await setup.wsmon.stop() == 0


@needs("prometheus")
@pytest.mark.parametrize("kind", ["urls", "names"])
async def test_prometheus_scrapes_probe_blackbox_style(tmp_path: Path, kind: str) -> None:
    def scraper(prober: str, targets: list[str]) -> contextlib.AbstractAsyncContextManager[Running]:
        return prometheus(tmp_path, [probe_job(prober, targets)])

    async with (
        probed(tmp_path, kind, scraper) as setup,
        httpx.AsyncClient(trust_env=False, timeout=HTTP_TIMEOUT) as client,
    ):
        prom = setup.scraper

        async def arrived() -> Found | None:
            found: Found = {}
            for labels, value in await prom_query(client, prom, f'{{job="{JOB}"}}'):
                labels = dict(labels)
                name = labels.pop("__name__")
                found[name, labels.get("instance", "")] = (labels, value)
            return all_succeeded(found, setup.targets)

        found = await until(arrived, 15_000 * MS, "probe_success of both targets in Prometheus")
        check_probe_series(found, setup.targets)
        assert {instance for _, instance in found} == set(setup.targets)
        if setup.secret is not None:
            everything = (await client.get(f"{prom.base}/api/v1/query", params={"query": '{__name__=~".+"}'})).text
            scrape_targets = (await client.get(f"{prom.base}/api/v1/targets")).text
            for text in (everything, scrape_targets, setup.wsmon.log(), prom.log()):
                assert setup.secret not in text
            assert "target=node1" in scrape_targets  # the scrape URL carries the name only
        assert await setup.wsmon.stop() == 0
