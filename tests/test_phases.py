"""The phase clock (wsmon.probe.phases): the phase in progress, and each finished one's time."""

from __future__ import annotations

import pytest

from tests.fakes import FakeClock
from tests.servers import MS
from wsmon.probe import phases
from wsmon.probe.log import ProbeLog
from wsmon.probe.phases import PhaseClock
from wsmon.probe.reasons import Phase


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> FakeClock:
    clock = FakeClock()
    monkeypatch.setattr(phases, "perf_counter", clock)
    return clock


def test_a_clock_starts_resolving_with_nothing_timed() -> None:
    phase_clock = PhaseClock()
    assert (phase_clock.phase, phase_clock.phases) == (Phase.RESOLVE, {})


def test_phases_are_entered_and_timed_apart(clock: FakeClock) -> None:
    phase_clock = PhaseClock()
    began = clock()
    clock.advance(2 * MS)
    phase_clock.enter(Phase.CONNECT)  # entering times nothing: the caller says when a phase began
    assert (phase_clock.phase, phase_clock.phases) == (Phase.CONNECT, {})
    clock.advance(3 * MS)
    assert phase_clock.timed(Phase.CONNECT, began) == clock.now
    assert phase_clock.phases == {Phase.CONNECT: pytest.approx(5 * MS)}
    assert phase_clock.phase is Phase.CONNECT  # timing a phase does not leave it


def test_each_timed_phase_is_told_to_the_probe_log(clock: FakeClock) -> None:
    probe_log = ProbeLog("ws://node.example/", keep=True, emit=False)
    phase_clock = PhaseClock(probe_log)
    began = clock()
    clock.advance(250 * MS)
    began = phase_clock.timed(Phase.RESOLVE, began)
    clock.advance(500 * MS)
    phase_clock.timed(Phase.UPGRADE, began, status=101)
    assert list(phase_clock.phases) == [Phase.RESOLVE, Phase.UPGRADE]
    assert probe_log.lines == [
        f"resolve done seconds={round(250 * MS, 6)}",  # rounded to the microsecond
        f"upgrade done seconds={round(500 * MS, 6)} status=101",
    ]
