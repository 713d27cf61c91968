"""Random bytes for masks and handshake keys (wsmon.ws.entropy)."""

from __future__ import annotations

import os

import pytest

from wsmon.ws.entropy import random_bytes


@pytest.mark.parametrize("n", [4, 16, 1000, 5000])
def test_each_call_gets_the_bytes_asked_for(n: int) -> None:
    assert len(random_bytes(n)) == n


def test_no_draw_repeats_another() -> None:
    draws = [random_bytes(16) for _ in range(3000)]  # crosses several pages
    assert len(set(draws)) == len(draws)


def test_masks_come_from_the_pool_not_a_constant() -> None:
    masks = {random_bytes(4) for _ in range(2000)}
    assert len(masks) > 1990  # 2000 draws from 2**32: a handful of collisions at most


def test_a_forked_child_does_not_repeat_its_parent_s_bytes() -> None:
    random_bytes(4)  # the parent has a page in use
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child
        os.write(write_end, random_bytes(16))
        os._exit(0)
    os.close(write_end)
    _, status = os.waitpid(pid, 0)
    child = os.read(read_end, 16)
    os.close(read_end)
    assert os.waitstatus_to_exitcode(status) == 0
    assert len(child) == 16
    assert child != random_bytes(16)  # the parent's next 16: what a copied page would repeat
