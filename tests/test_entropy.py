"""Random bytes for masks and handshake keys (wsmon.ws.entropy)."""

from __future__ import annotations

import os

import pytest

from wsmon.ws.entropy import masking_key, random_bytes


@pytest.mark.parametrize("n", [4, 16, 1000, 5000])
def test_each_call_gets_the_bytes_asked_for(n: int) -> None:
    assert len(random_bytes(n)) == n


def test_no_draw_repeats_another() -> None:
    draws = [random_bytes(16) for _ in range(3000)]  # crosses several pages
    assert len(set(draws)) == len(draws)


def test_masks_come_from_the_pool_not_a_constant() -> None:
    masks = {random_bytes(4) for _ in range(2000)}
    assert len(masks) > 1990  # 2000 draws from 2**32: a handful of collisions at most


def test_masking_keys_are_32_bit_and_do_not_repeat_across_pages() -> None:
    keys = [masking_key() for _ in range(3000)]  # nearly three pages of 1,024 keys
    assert all(0 <= key < 2**32 for key in keys)
    assert len(set(keys)) > 2990
    assert max(keys) >= 2**31  # the top bit is used: a key is four random bytes, not three


def test_keys_and_bytes_share_the_pool_without_handing_out_a_word_twice() -> None:
    drawn = []
    for _ in range(1500):  # crosses pages, with draws of both kinds in between
        drawn.append(masking_key().to_bytes(4, "big"))
        drawn.append(random_bytes(8))
    words = [d[i : i + 4] for d in drawn for i in range(0, len(d), 4)]
    assert len(set(words)) > len(words) - 10


def test_a_forked_child_does_not_repeat_its_parent_s_bytes() -> None:
    masking_key()  # the parent has a page in use
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
