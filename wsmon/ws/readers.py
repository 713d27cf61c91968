"""Read readiness for many sockets through one epoll, which the event loop watches as one fd.

Why not ``loop.add_reader`` per socket: on uvloop each call makes a libuv poll handle, held for
as long as the socket is read (~620 bytes a socket: 6 MB for a fleet of 10,000 persistent
connections), and adding then removing one costs six ``epoll_ctl`` and an ``ioctl`` (libuv
tries the fd, sets it non-blocking, removes it twice). Here a socket costs one dict entry, one
``epoll_ctl`` to add and one to remove. The loop watches the epoll's own fd; when it is
readable, one ``epoll_wait`` says which sockets are, and their callbacks run in that loop turn,
as the loop's own would have.

The epoll is level-triggered, like the loop's readers: a callback that leaves data unread is
called again at the next turn. Where there is no epoll (not Linux), ``loop.add_reader`` is used.

    readers(loop).add(fd, callback)    # callback() whenever fd is readable
    readers(loop).remove(fd)           # before the socket is closed
    readers(loop).read_now()           # every readable socket's callback, now
"""

from __future__ import annotations

import asyncio
import contextlib
import select
import weakref
from collections.abc import Callable

__all__ = ["EpollReaders", "LoopReaders", "readers"]

# At most this many sockets are handled per wake-up; the rest stay ready for the next turn.
_BATCH = 256


class EpollReaders:
    """The sockets of one event loop read through one epoll; closed when none is left."""

    __slots__ = ("_callbacks", "_epoll", "_loop")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._epoll: select.epoll | None = None
        self._callbacks: dict[int, Callable[[], object]] = {}
        # Weak: a loop collected with sockets still registered takes this with it.
        self._loop = weakref.ref(loop)

    def add(self, fd: int, callback: Callable[[], object]) -> None:
        epoll = self._epoll
        if epoll is None:
            epoll = self._epoll = select.epoll()  # close-on-exec
            loop = self._loop()
            assert loop is not None
            try:
                loop.add_reader(epoll.fileno(), self._ready)
            except BaseException:
                self._close()
                raise
        try:
            epoll.register(fd, select.EPOLLIN)
        except FileExistsError:  # a socket the kernel dropped on close, its number reused
            epoll.modify(fd, select.EPOLLIN)
        except BaseException:
            if not self._callbacks:
                self._close()
            raise
        self._callbacks[fd] = callback

    def remove(self, fd: int) -> None:
        if self._callbacks.pop(fd, None) is None:
            return
        assert self._epoll is not None
        with contextlib.suppress(OSError):  # closed already: the kernel dropped it from the epoll then
            self._epoll.unregister(fd)
        if not self._callbacks:
            self._close()

    def __len__(self) -> int:
        return len(self._callbacks)

    def read_now(self) -> None:
        """Run the callbacks of every socket readable now, not waiting for the loop's turn.

        For the ping wheel when it runs late: uvloop runs timers before reading, so after a long
        stall the wheel would judge pings unanswered whose pongs wait in the kernel, in time.
        Every ready socket is read, batch after batch (the loop's turn reads one batch).
        """
        for _ in range(len(self._callbacks) // _BATCH + 1):
            if self._ready() < _BATCH:
                return

    def _ready(self) -> int:
        """Run the callbacks of one batch of readable sockets; how many there were."""
        epoll, callbacks = self._epoll, self._callbacks
        if epoll is None:
            return 0
        ready = epoll.poll(0, _BATCH)
        for fd, _ in ready:
            # A callback may have removed another socket of the batch (or closed it and
            # reused its number: a spurious call, which a non-blocking read shrugs off).
            callback = callbacks.get(fd)
            if callback is not None:
                callback()
        return len(ready)

    def _close(self) -> None:
        epoll, self._epoll = self._epoll, None
        loop = self._loop()
        if loop is not None:
            _by_loop.pop(loop, None)
        if epoll is None:
            return
        if loop is not None and not loop.is_closed():
            loop.remove_reader(epoll.fileno())
        epoll.close()


class LoopReaders:
    """Where there is no epoll: the loop's own readers."""

    __slots__ = ("_loop",)

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop

    def add(self, fd: int, callback: Callable[[], object]) -> None:
        self._loop.add_reader(fd, callback)

    def remove(self, fd: int) -> None:
        self._loop.remove_reader(fd)

    def read_now(self) -> None:
        """Nothing: the loop's own readers cannot be run out of their turn."""


_by_loop: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, EpollReaders] = weakref.WeakKeyDictionary()


def readers(loop: asyncio.AbstractEventLoop) -> EpollReaders | LoopReaders:
    """The readers of ``loop``."""
    if not hasattr(select, "epoll"):
        return LoopReaders(loop)
    found = _by_loop.get(loop)
    if found is None:
        found = _by_loop[loop] = EpollReaders(loop)
    return found
