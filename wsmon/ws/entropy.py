"""Random bytes for masking keys and handshake keys, drawn from the OS a page at a time.

Why: RFC 6455 asks for a fresh, unpredictable masking key per frame and a random key per
handshake. ``os.urandom`` per call is one ``getrandom`` system call each: at 10,000
persistent targets pinged once a second, 10,000 system calls a second for 4 bytes each
(measured: as many as the pings' own ``sendto``). Here the same OS generator fills a page at
once and callers take slices of it; no byte is handed out twice. The page is per thread (no
lock on the hot path) and dropped in a forked child, which must not repeat its parent's bytes.
"""

from __future__ import annotations

import os
import threading

__all__ = ["random_bytes"]

_PAGE = 4096


class _Pool(threading.local):
    def __init__(self) -> None:
        self.page = b""
        self.offset = 0


_pool = _Pool()


def random_bytes(n: int) -> bytes:
    """``n`` bytes from the OS's cryptographic generator, as ``os.urandom(n)``."""
    pool = _pool
    start = pool.offset
    end = start + n
    if end > len(pool.page):
        if n > _PAGE // 4:
            return os.urandom(n)
        pool.page, start, end = os.urandom(_PAGE), 0, n
    pool.offset = end
    return pool.page[start:end]


def _forget_in_child() -> None:
    global _pool
    _pool = _Pool()


os.register_at_fork(after_in_child=_forget_in_child)
