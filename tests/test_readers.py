"""One epoll for every stamped socket's reads (wsmon.ws.readers), on both loops."""

from __future__ import annotations

import asyncio
import gc
import os
import select
import socket
from collections.abc import Callable, Iterator

import pytest

from tests.servers import MS
from wsmon.ws import readers as readers_module
from wsmon.ws.readers import EpollReaders, LoopReaders, readers

WAIT = 5000 * MS


def hear(sock: socket.socket, heard: asyncio.Future[bytes]) -> Callable[[], None]:
    """A reader callback that resolves ``heard`` with the first bytes read."""

    def read() -> None:
        data = sock.recv(64)
        if not heard.done():
            heard.set_result(data)

    return read


def note(sock: socket.socket, index: int, called: asyncio.Queue[int]) -> Callable[[], None]:
    """A reader callback that drains ``sock`` and puts ``index`` on ``called``."""

    def read() -> None:
        sock.recv(64)
        called.put_nowait(index)

    return read


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


@pytest.fixture
def pairs() -> Iterator[list[tuple[socket.socket, socket.socket]]]:
    made = [socket.socketpair() for _ in range(8)]
    for ours, _ in made:
        ours.setblocking(False)
    yield made
    for ours, theirs in made:
        ours.close()
        theirs.close()


async def test_only_the_readable_sockets_are_called(pairs: list[tuple[socket.socket, socket.socket]]) -> None:
    loop = asyncio.get_running_loop()
    called: asyncio.Queue[int] = asyncio.Queue()
    for index, (ours, _) in enumerate(pairs):
        readers(loop).add(ours.fileno(), note(ours, index, called))
    pairs[2][1].send(b"x")
    pairs[5][1].send(b"y")
    got = {await asyncio.wait_for(called.get(), WAIT), await asyncio.wait_for(called.get(), WAIT)}
    assert got == {2, 5}
    await asyncio.sleep(20 * MS)
    assert called.empty()  # read: level-triggered, nothing left to report
    for ours, _ in pairs:
        readers(loop).remove(ours.fileno())


async def test_read_now_calls_every_readable_socket_at_once_past_one_batch() -> None:
    """What the ping wheel does when it runs late: every socket that has data is read before it
    goes on, however many there are, without the loop's turn."""
    loop = asyncio.get_running_loop()
    many = [socket.socketpair() for _ in range(readers_module._BATCH * 2 + 10)]
    called: asyncio.Queue[int] = asyncio.Queue()
    try:
        for index, (ours, theirs) in enumerate(many):
            ours.setblocking(False)
            readers(loop).add(ours.fileno(), note(ours, index, called))
            if index % 50:  # every socket but one in fifty has something to read
                theirs.send(b"x")
        readers(loop).read_now()  # no await in between: the loop has no turn
        got = {called.get_nowait() for _ in range(called.qsize())}
        assert got == {index for index in range(len(many)) if index % 50}
    finally:
        for ours, theirs in many:
            readers(loop).remove(ours.fileno())
            ours.close()
            theirs.close()


async def test_data_left_unread_is_reported_again(pairs: list[tuple[socket.socket, socket.socket]]) -> None:
    loop = asyncio.get_running_loop()
    ours, theirs = pairs[0]
    calls = 0
    twice = loop.create_future()

    def read_one_byte() -> None:
        nonlocal calls
        ours.recv(1)
        calls += 1
        if calls == 2:
            twice.set_result(None)

    readers(loop).add(ours.fileno(), read_one_byte)
    theirs.send(b"ab")
    await asyncio.wait_for(twice, WAIT)
    readers(loop).remove(ours.fileno())


async def test_a_socket_removed_by_another_s_callback_is_not_called(
    pairs: list[tuple[socket.socket, socket.socket]],
) -> None:
    loop = asyncio.get_running_loop()
    (first, first_peer), (second, second_peer) = pairs[0], pairs[1]
    called: list[str] = []

    def on_first() -> None:
        first.recv(64)
        called.append("first")
        readers(loop).remove(second.fileno())

    def on_second() -> None:
        second.recv(64)
        called.append("second")
        readers(loop).remove(first.fileno())

    readers(loop).add(first.fileno(), on_first)
    readers(loop).add(second.fileno(), on_second)
    first_peer.send(b"x")
    second_peer.send(b"y")  # both ready in the same epoll_wait
    await asyncio.sleep(50 * MS)
    assert len(called) == 1  # whichever ran first removed the other before its turn
    remaining = first if called == ["second"] else second
    readers(loop).remove(remaining.fileno())  # already removed: nothing to do, no error


async def test_the_epoll_is_closed_with_its_last_socket(pairs: list[tuple[socket.socket, socket.socket]]) -> None:
    loop = asyncio.get_running_loop()
    before = open_fds()
    for ours, _ in pairs:
        readers(loop).add(ours.fileno(), lambda: None)
    assert open_fds() == before + 1  # one epoll for all of them
    registered = readers(loop)
    assert isinstance(registered, EpollReaders) and len(registered) == len(pairs)
    for ours, _ in pairs:
        readers(loop).remove(ours.fileno())
    assert open_fds() == before


async def test_a_socket_closed_while_registered_frees_its_number_for_the_next() -> None:
    loop = asyncio.get_running_loop()
    keep, keep_peer = socket.socketpair()  # holds the epoll open throughout
    readers(loop).add(keep.fileno(), lambda: None)
    ours, theirs = socket.socketpair()
    fd = ours.fileno()
    readers(loop).add(fd, lambda: None)
    ours.close()  # the kernel drops it from the epoll; its callback is still on record
    again, again_peer = socket.socketpair()
    try:
        assert again.fileno() == fd  # the lowest free number: the one just closed
        heard: asyncio.Future[bytes] = loop.create_future()
        readers(loop).add(fd, hear(again, heard))
        again_peer.send(b"new")
        assert await asyncio.wait_for(heard, WAIT) == b"new"
    finally:
        for sock in (again, keep):
            readers(loop).remove(sock.fileno())
        for sock in (again, again_peer, keep, keep_peer, theirs):
            sock.close()


async def test_without_epoll_the_loop_s_own_readers_are_used(
    monkeypatch: pytest.MonkeyPatch, pairs: list[tuple[socket.socket, socket.socket]]
) -> None:
    monkeypatch.delattr(select, "epoll")
    loop = asyncio.get_running_loop()
    assert isinstance(readers(loop), LoopReaders)
    ours, theirs = pairs[0]
    heard: asyncio.Future[bytes] = loop.create_future()
    readers(loop).add(ours.fileno(), hear(ours, heard))
    theirs.send(b"z")
    assert await asyncio.wait_for(heard, WAIT) == b"z"
    readers(loop).remove(ours.fileno())


async def test_each_loop_has_its_own_and_lets_go_of_it() -> None:
    loop = asyncio.get_running_loop()
    other = asyncio.new_event_loop()
    try:
        assert isinstance(readers(loop), EpollReaders)
        assert readers(loop) is readers(loop)
        assert readers(other) is not readers(loop)
    finally:
        other.close()
    kept = len(readers_module._by_loop)
    del other
    gc.collect()
    assert len(readers_module._by_loop) == kept - 1  # a loop gone takes its readers with it
