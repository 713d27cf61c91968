"""``wsmon serve`` pushing to a real VictoriaMetrics and a real Pushgateway (issue 4).

wsmon runs as a subprocess watching local echo servers; what it pushed is read back from the
server itself: VictoriaMetrics through ``/internal/force_flush`` + ``/api/v1/export``, the
Pushgateway through its ``/metrics``.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import httpx

from tests.realservers import (
    Running,
    Sample,
    Series,
    free_port,
    has_sample,
    needs,
    pushgateway,
    sample_value,
    scrape,
    until,
    victoria_metrics,
    vm_export,
    wsmon_serve,
)
from tests.servers import HOST, MS, Server, go_duration

PROBE = {"target": "echo-probe", "chain": "eth"}  # a probe-mode target's own labels
PERSISTENT = {"target": "echo-persistent"}
SUCCESS = {"result": "success", "reason": "none"}
PASSWORD = "CANARY-push-password-7d1f"
PROBE_TIMEOUT = 400 * MS  # of the targets: no round trip takes longer
PUSH_INTERVAL = 1000 * MS
HTTP_TIMEOUT = 5000 * MS


def write_config(path: Path, echo: Server, push: str = "") -> Path:
    """Two targets on ``echo`` (probe mode every 500 ms, and persistent) and a ``[[push]]`` table."""
    path.write_text(
        f"""
[settings]
ping_interval = "{go_duration(200 * MS)}"
timeout = "{go_duration(PROBE_TIMEOUT)}"

[[targets]]
name = "echo-probe"
url = "{echo.url("/")}"
interval = "{go_duration(500 * MS)}"
labels = {{ chain = "eth" }}

[[targets]]
name = "echo-persistent"
url = "{echo.url("/")}"
mode = "persistent"

{push}
"""
    )
    return path


def push_table(url: str, *lines: str, name: str = "vm") -> str:
    """A ``[[push]]`` table pushing every second (timeout 500 ms), and its other ``lines``."""
    interval, timeout = go_duration(PUSH_INTERVAL), go_duration(500 * MS)
    return "\n".join(
        (
            "[[push]]",
            f'name = "{name}"',
            f'url = "{url}"',
            f'interval = "{interval}"',
            f'timeout = "{timeout}"',
            *lines,
            "",
        )
    )


def find(series: list[Series], name: str, **labels: str) -> Series:
    """The one series with exactly this name and these labels; AssertionError naming it if none."""
    found = [item for item in series if item.name == name and item.labels == labels]
    assert len(found) == 1, f"{len(found)} series {name}{labels}, not 1"
    return found[0]


def assert_no_url_in_labels(series: list[Series] | list[Sample], echo: Server) -> None:
    for item in series:
        for key, value in item.labels.items():
            assert "://" not in value and HOST not in value, (item.name, key, value)
            assert str(echo.port) not in value, (item.name, key, value)


async def wsmon_metrics(client: httpx.AsyncClient, wsmon: Running) -> list[Sample]:
    return await scrape(client, f"{wsmon.base}/metrics")


@needs("victoria-metrics")
async def test_push_to_victoria_metrics(tmp_path: Path, echo_server: Server) -> None:
    # VictoriaMetrics wants a password: the push succeeds only with wsmon's Authorization header.
    async with victoria_metrics(tmp_path, basic_auth=("wsmon", PASSWORD)) as vm:
        config = write_config(
            tmp_path / "targets.toml",
            echo_server,
            push_table(
                vm.base,
                'extra_labels = { env = "test" }',
                'basic_auth = { username = "wsmon", password = "${PUSH_PASSWORD}" }',
            ),
        )
        pushed = {"job": "wsmon", "env": "test"}
        started = time.time()
        async with (
            wsmon_serve(tmp_path, config, env={"PUSH_PASSWORD": PASSWORD}) as wsmon,
            httpx.AsyncClient(trust_env=False, timeout=HTTP_TIMEOUT, auth=("wsmon", PASSWORD)) as client,
        ):

            async def enough() -> list[Series] | None:
                series, _ = await vm_export(client, vm, '{job="wsmon"}')
                probes = find(series, "wsmon_probes_total", **PROBE, **pushed, **SUCCESS)
                persistent = find(series, "probe_success", **PERSISTENT, **pushed)
                return series if probes.last >= 3 and persistent.last == 1 else None

            series = await until(enough, 15_000 * MS, "3 successful probes pushed to VictoriaMetrics")
            own_text = (await client.get(f"{wsmon.base}/metrics")).text
            own = await wsmon_metrics(client, wsmon)
            assert await wsmon.stop() == 0, wsmon.log()
    for text in (wsmon.log(), own_text):
        assert PASSWORD not in text

    for labels in (PROBE, PERSISTENT):
        for name in ("probe_success", "probe_websocket_up", "probe_websocket_ping_pong_success"):
            assert find(series, name, **labels, **pushed).last == 1, (name, labels)
        rtt = find(series, "probe_websocket_ping_pong_duration_seconds", **labels, **pushed)
        assert 0 < rtt.last < PROBE_TIMEOUT
    assert find(series, "wsmon_connection_state", **PERSISTENT, **pushed, state="connected").last == 1

    # The ping-pong histogram of the probe-mode target, as of its latest push.
    buckets = {
        s.labels["le"]: s
        for s in series
        if s.name == "wsmon_ping_pong_duration_seconds_bucket" and {**PROBE, **pushed, "le": s.labels["le"]} == s.labels
    }
    assert {"1.0", "+Inf"} <= set(buckets), sorted(buckets)  # VictoriaMetrics keeps le="1.0" verbatim
    assert "1" not in buckets
    count = find(series, "wsmon_ping_pong_duration_seconds_count", **PROBE, **pushed)
    assert count.last >= 3
    latest = max(count.timestamps)
    counts = [buckets[le].values[buckets[le].timestamps.index(latest)] for le in sorted(buckets, key=float)]
    assert counts == sorted(counts)  # cumulative
    assert counts[-1] == count.last
    assert buckets["1.0"].values[buckets["1.0"].timestamps.index(latest)] == count.last  # all under a second

    assert all(s.labels["job"] == "wsmon" and s.labels["env"] == "test" for s in series)
    assert {s.labels.get("target") for s in series} == {"echo-probe", "echo-persistent"}
    assert_no_url_in_labels(series, echo_server)

    assert sample_value(own, "wsmon_push_total", push="vm", result="success") >= 1
    assert not has_sample(own, "wsmon_push_total", push="vm", result="failure")  # none failed: no series
    last_success = sample_value(own, "wsmon_push_last_success_timestamp_seconds", push="vm")
    assert started < last_success <= time.time()


@needs("prometheus-pushgateway")
async def test_push_to_pushgateway_and_delete_on_shutdown(tmp_path: Path, echo_server: Server) -> None:
    async with pushgateway(tmp_path) as gateway, httpx.AsyncClient(trust_env=False, timeout=HTTP_TIMEOUT) as client:
        config = write_config(
            tmp_path / "targets.toml",
            echo_server,
            push_table(
                gateway.base,
                'kind = "pushgateway"',
                'instance = "wsmon-test"',
                'extra_labels = { env = "test" }',
                "delete_on_shutdown = true",
                name="gateway",
            ),
        )
        group = {"job": "wsmon", "instance": "wsmon-test", "env": "test"}
        async with wsmon_serve(tmp_path, config) as wsmon:

            async def enough() -> list[Sample] | None:
                samples = await scrape(client, f"{gateway.base}/metrics")
                probes = sample_value(samples, "wsmon_probes_total", **PROBE, **group, **SUCCESS)
                persistent = sample_value(samples, "probe_success", **PERSISTENT, **group)
                return samples if probes >= 2 and persistent == 1 else None

            samples = await until(enough, 15_000 * MS, "the group on the Pushgateway")
            own = await wsmon_metrics(client, wsmon)
            assert await wsmon.stop() == 0, wsmon.log()  # SIGTERM: deletes the group
        after = await scrape(client, f"{gateway.base}/metrics")
        groups = (await client.get(f"{gateway.base}/api/v1/metrics")).json()["data"]

    for labels in (PROBE, PERSISTENT):
        assert sample_value(samples, "probe_success", **labels, **group) == 1
        rtt = sample_value(samples, "probe_websocket_ping_pong_duration_seconds", **labels, **group)
        assert 0 < rtt < PROBE_TIMEOUT
    assert sample_value(samples, "push_time_seconds", **group) > time.time() - 60_000 * MS
    assert sample_value(samples, "push_failure_time_seconds", **group) == 0  # every push was taken
    inf = sample_value(samples, "wsmon_ping_pong_duration_seconds_bucket", **PROBE, **group, le="+Inf")
    count = sample_value(samples, "wsmon_ping_pong_duration_seconds_count", **PROBE, **group)
    assert inf == count and inf >= 2
    ours = [s for s in samples if s.labels.get("job") == "wsmon"]
    assert {s.labels.get("target") for s in ours} == {"echo-probe", "echo-persistent", None}  # None: push_time…
    assert all(s.labels["instance"] == "wsmon-test" and s.labels["env"] == "test" for s in ours)
    assert_no_url_in_labels(ours, echo_server)
    assert sample_value(own, "wsmon_push_total", push="gateway", result="success") >= 1

    assert [s for s in after if s.labels.get("job") == "wsmon"] == []  # the group is gone
    assert groups == []


@needs("victoria-metrics")
async def test_push_target_down_then_up_loses_no_probe(tmp_path: Path, echo_server: Server) -> None:
    async with httpx.AsyncClient(trust_env=False, timeout=HTTP_TIMEOUT) as client:
        vm_port = free_port()  # nothing listens there yet
        config = write_config(
            tmp_path / "targets.toml",
            echo_server,
            push_table(f"http://{HOST}:{vm_port}"),
        )
        async with wsmon_serve(tmp_path, config) as wsmon:

            async def failing(at_least: float) -> list[Sample] | None:
                samples = await wsmon_metrics(client, wsmon)
                failures = sample_value(samples, "wsmon_push_total", push="vm", result="failure")
                return samples if failures >= at_least else None

            before = await until(lambda: failing(2), 10_000 * MS, "two failed pushes")
            failures = sample_value(before, "wsmon_push_total", push="vm", result="failure")
            during = await until(lambda: failing(failures + 1), 10_000 * MS, "one more failed push")
            # Probing went on meanwhile; nothing was pushed.
            probed_before = sample_value(before, "wsmon_probes_total", **PROBE, **SUCCESS)
            reached = sample_value(during, "wsmon_probes_total", **PROBE, **SUCCESS)
            assert reached > probed_before
            assert sample_value(during, "probe_success", **PROBE) == 1
            assert not has_sample(during, "wsmon_push_total", push="vm", result="success")
            assert not has_sample(during, "wsmon_push_last_success_timestamp_seconds", push="vm")

            async with victoria_metrics(tmp_path, port=vm_port) as vm:
                up_at = time.time()

                async def arrived() -> Series:
                    series, _ = await vm_export(client, vm, '{job="wsmon"}')
                    return find(series, "wsmon_probes_total", **PROBE, job="wsmon", **SUCCESS)

                probes = await until(arrived, 10_000 * MS, "the first push after VictoriaMetrics came up")
                after = await wsmon_metrics(client, wsmon)
                assert await wsmon.stop() == 0, wsmon.log()

    # The first sample that arrived already counts every probe done while the push target was down.
    first = probes.values[probes.timestamps.index(min(probes.timestamps))]
    assert first >= reached, (first, reached)
    assert probes.last >= first
    assert sample_value(after, "wsmon_push_total", push="vm", result="success") >= 1
    last_success = sample_value(after, "wsmon_push_last_success_timestamp_seconds", push="vm")
    assert last_success >= up_at - 1000 * MS
    logged = [line for line in wsmon.log().splitlines() if "push failed" in line]
    assert len(logged) >= failures + 1, wsmon.log()
    assert all("push=vm" in line for line in logged), logged


@needs("victoria-metrics")
async def test_push_flags_with_a_short_interval(tmp_path: Path, echo_server: Server) -> None:
    async with victoria_metrics(tmp_path) as vm, httpx.AsyncClient(trust_env=False, timeout=HTTP_TIMEOUT) as client:
        config = write_config(tmp_path / "targets.toml", echo_server)
        args = ("--push.url", vm.base, "--push.interval", go_duration(PUSH_INTERVAL))
        async with wsmon_serve(tmp_path, config, *args) as wsmon:

            async def arrived() -> Series:
                series, _ = await vm_export(client, vm, '{job="wsmon"}')
                return find(series, "probe_success", **PROBE, job="wsmon")

            success = await until(arrived, 10_000 * MS, "a push through --push.url")
            own = await wsmon_metrics(client, wsmon)
    assert success.last == 1
    # Without a name, a destination is called by its kind and address (never a URL path or password).
    host = vm.base.removeprefix("http://")
    assert sample_value(own, "wsmon_push_total", push=f"victoriametrics:{host}", result="success") >= 1


@needs("victoria-metrics")
async def test_push_logs_are_json_with_log_format_json(tmp_path: Path, echo_server: Server) -> None:
    async with victoria_metrics(tmp_path) as vm, httpx.AsyncClient(trust_env=False, timeout=HTTP_TIMEOUT) as client:
        config = write_config(tmp_path / "targets.toml", echo_server, push_table(vm.base))
        async with wsmon_serve(tmp_path, config, "--log.format", "json") as wsmon:

            async def pushed() -> float:
                return sample_value(await wsmon_metrics(client, wsmon), "wsmon_push_total", push="vm", result="success")

            await until(pushed, 10_000 * MS, "a successful push")
            assert await wsmon.stop() == 0
    lines = wsmon.log().splitlines()
    assert lines
    assert [line for line in lines if not is_json_object(line)] == []


def is_json_object(line: str) -> bool:
    try:
        return isinstance(json.loads(line), dict)
    except ValueError:
        return False
