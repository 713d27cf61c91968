"""``/metrics`` says what times wsmon's round trips: the kernel's receive timestamps, or the loop;
and how many pings were left untimed, their send preempted."""

from __future__ import annotations

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.exporter import running_exporter
from tests.preempt import preempt_ping_sends
from tests.servers import MS
from wsmon.ws import stamps


def counts(text: str) -> dict[str, float]:
    found: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "wsmon_receive_clock_sockets_total":
                found[sample.labels["clock"]] = sample.value
            elif sample.name == "wsmon_receive_clock_loop_reads_total":
                found["loop reads"] = sample.value
            elif sample.name == "wsmon_untimed_pings_total":
                found["untimed"] = sample.value
    assert set(found) == {"kernel", "loop", "loop reads", "untimed"}, found
    return found


async def test_probes_count_as_kernel_timed() -> None:
    async with running_exporter() as running:
        before = counts((await running.client.get("/metrics")).text)
        for _ in range(3):
            answer = await running.client.get("/probe", params={"target": running.echo_url})
            assert "probe_success 1.0" in answer.text.splitlines()
        after = counts((await running.client.get("/metrics")).text)
    assert after["kernel"] - before["kernel"] == 3
    assert after["loop"] == before["loop"]


async def test_a_ping_whose_send_was_preempted_is_counted_untimed(monkeypatch: pytest.MonkeyPatch) -> None:
    preempt_ping_sends(monkeypatch, 50 * MS)
    async with running_exporter() as running:
        before = counts((await running.client.get("/metrics")).text)
        answer = await running.client.get("/probe", params={"target": running.echo_url})
        lines = answer.text.splitlines()
        assert "probe_success 1.0" in lines
        (rtt,) = [line for line in lines if line.startswith("probe_websocket_ping_pong_duration_seconds ")]
        assert float(rtt.split()[1]) < 50 * MS  # the ping sent again, in time, is the one reported
        after = counts((await running.client.get("/metrics")).text)
    assert after["untimed"] - before["untimed"] == 1


async def test_where_the_kernel_gives_no_stamps_it_says_so(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(stamps, "SO_TIMESTAMPNS", None)  # as on a platform without the option
    async with running_exporter() as running:
        before = counts((await running.client.get("/metrics")).text)
        answer = await running.client.get("/probe", params={"target": running.echo_url})
        assert "probe_success 1.0" in answer.text.splitlines()
        after = counts((await running.client.get("/metrics")).text)
    assert (after["kernel"] - before["kernel"], after["loop"] - before["loop"]) == (0, 1)
