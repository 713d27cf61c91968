"""Probe deadlines on a shared timer (wsmon.deadline): what asyncio.timeout does, cheaper."""

from __future__ import annotations

import asyncio
import gc
import weakref

import pytest

from tests.servers import MS
from wsmon.probe import deadline as deadline_module
from wsmon.probe.deadline import Deadline

SLACK = 100 * MS


async def sleeper(seconds: float, timeout: float) -> float:
    """Sleep ``seconds`` under a deadline of ``timeout``; how long it really took."""
    loop = asyncio.get_running_loop()
    began = loop.time()
    with Deadline(loop, began + timeout):
        await asyncio.sleep(seconds)
    return loop.time() - began


async def test_a_deadline_that_passes_raises_timeout_error_on_time() -> None:
    loop = asyncio.get_running_loop()
    began = loop.time()
    with pytest.raises(TimeoutError):
        await sleeper(10, 0.2)
    assert 0.2 <= loop.time() - began <= 0.2 + SLACK


async def test_a_block_done_in_time_is_never_cancelled_later() -> None:
    assert await sleeper(0.05, 0.1) < 0.1
    await asyncio.sleep(0.15)  # past the old deadline: nothing may cancel this task now


async def test_out_of_order_deadlines_each_end_on_time() -> None:
    loop = asyncio.get_running_loop()
    began = loop.time()
    ends: dict[str, float] = {}

    async def run(name: str, timeout: float) -> None:
        with pytest.raises(TimeoutError):
            await sleeper(10, timeout)
        ends[name] = loop.time() - began

    # The later deadline arrives first: the earlier one must still get its own timer.
    await asyncio.gather(run("late", 0.4), run("early", 0.1), run("middle", 0.25))
    assert 0.1 <= ends["early"] < 0.1 + SLACK
    assert 0.25 <= ends["middle"] < 0.25 + SLACK
    assert 0.4 <= ends["late"] < 0.4 + SLACK


async def test_an_outside_cancellation_goes_through() -> None:
    task = asyncio.create_task(sleeper(10, 5))
    await asyncio.sleep(0.05)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


async def test_finished_entries_do_not_pile_up() -> None:
    loop = asyncio.get_running_loop()
    for _ in range(5000):
        with Deadline(loop, loop.time() + 60):  # far deadlines: only sweeping removes them
            pass
    queue = deadline_module._queues[loop]
    assert queue.running == 0
    assert len(queue._heap) <= 2 * deadline_module._COMPACT_ABOVE + 1


def test_a_loop_that_ran_probes_can_be_freed() -> None:
    loop = asyncio.new_event_loop()
    loop.run_until_complete(sleeper(0, 1))
    assert loop in deadline_module._queues
    ref = weakref.ref(loop)
    loop.close()
    del loop
    gc.collect()
    assert ref() is None
