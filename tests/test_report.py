"""What ``wsmon check`` prints of a probe's pings, untimed ones included (pure formatting)."""

from __future__ import annotations

import pytest

from wsmon.probe.report import probe_json, probe_report
from wsmon.probe.result import PingStats, ProbeResult

MS = 0.001


@pytest.mark.parametrize(
    ("ping", "received", "loss"),
    [
        (PingStats(sent=3, rtts=(1 * MS, 2 * MS, 3 * MS)), 3, 0.0),
        (PingStats(sent=3, rtts=(1 * MS,)), 1, 2 / 3),
        (PingStats(sent=3, rtts=(1 * MS, 2 * MS), untimed=1), 3, 0.0),  # an untimed pong is no loss
        (PingStats(sent=1, rtts=(), untimed=1), 1, 0.0),
        (PingStats(sent=2, rtts=()), 0, 1.0),
    ],
    ids=["all timed", "two lost", "one untimed", "only untimed", "all lost"],
)
def test_untimed_pongs_are_received_not_lost(ping: PingStats, received: int, loss: float) -> None:
    assert ping.received == received
    assert ping.loss_ratio == pytest.approx(loss)
    result = ProbeResult(success=True, duration=0.1, timeout=5.0, phases={"ping": 0.01}, ping=ping)
    assert result.ping_success is (loss == 0.0)


def test_the_report_and_the_json_say_which_pongs_were_untimed() -> None:
    ping = PingStats(sent=2, rtts=(1.5 * MS,), untimed=1)
    result = ProbeResult(success=True, duration=0.1, timeout=5.0, phases={"ping": 0.01}, ping=ping)
    (line,) = [line for line in probe_report("ws://node", "ping", result) if line.strip().startswith("ping")]
    assert line.endswith("rtt 1.50 ms, untimed")
    answer = probe_json("ws://node", "ping", result)["ping"]
    assert answer == {"sent": 2, "received": 2, "rtts_seconds": [1.5 * MS], "untimed": 1, "loss_ratio": 0.0}
    assert result.ping_rtt == 1.5 * MS
