"""Probe deadlines on a shared timer (wsmon.probe.deadline): what asyncio.timeout does, cheaper."""

from __future__ import annotations

import asyncio
import gc
import weakref

import pytest

from tests.servers import MS
from wsmon.probe import deadline as deadline_module
from wsmon.probe.deadline import Deadline

SLACK = 100 * MS  # how late a deadline may fire
FOREVER = 10_000 * MS  # a sleep only a deadline ends


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
        await sleeper(FOREVER, 200 * MS)
    assert 200 * MS <= loop.time() - began <= 200 * MS + SLACK


async def test_a_block_done_in_time_is_never_cancelled_later() -> None:
    assert await sleeper(50 * MS, 100 * MS) < 100 * MS
    await asyncio.sleep(150 * MS)  # past the old deadline: nothing may cancel this task now


async def test_out_of_order_deadlines_each_end_on_time() -> None:
    loop = asyncio.get_running_loop()
    began = loop.time()
    ends: dict[str, float] = {}

    async def run(name: str, timeout: float) -> None:
        with pytest.raises(TimeoutError):
            await sleeper(FOREVER, timeout)
        ends[name] = loop.time() - began

    # The later deadline arrives first: the earlier one must still get its own timer.
    timeouts = {"late": 400 * MS, "early": 100 * MS, "middle": 250 * MS}
    await asyncio.gather(*(run(name, timeout) for name, timeout in timeouts.items()))
    for name, timeout in timeouts.items():
        assert timeout <= ends[name] < timeout + SLACK, name


async def test_an_outside_cancellation_goes_through() -> None:
    task = asyncio.create_task(sleeper(FOREVER, 5000 * MS))
    await asyncio.sleep(50 * MS)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


async def test_finished_entries_do_not_pile_up() -> None:
    loop = asyncio.get_running_loop()
    for _ in range(5000):
        with Deadline(loop, loop.time() + 60_000 * MS):  # far deadlines: only sweeping removes them
            pass
    queue = deadline_module._queues[loop]
    assert queue.running == 0
    assert len(queue._heap) <= 2 * deadline_module._COMPACT_ABOVE + 1


def test_a_loop_that_ran_probes_can_be_freed() -> None:
    loop = asyncio.new_event_loop()
    loop.run_until_complete(sleeper(0, 1000 * MS))
    assert loop in deadline_module._queues
    ref = weakref.ref(loop)
    loop.close()
    del loop
    gc.collect()
    assert ref() is None
