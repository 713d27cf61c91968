"""systemd's notify protocol (``Type=notify``, ``WatchdogSec=``) without a dependency.

A datagram to ``$NOTIFY_SOCKET``: ``READY=1`` once serving, ``WATCHDOG=1`` every half
watchdog period from the event loop itself (a wedged loop stops the pings and systemd restarts
the service), ``RELOADING=1``/``READY=1`` around reloads, ``STOPPING=1`` on the way out.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket

__all__ = ["Notifier"]


class Notifier:
    def __init__(self, environ: dict[str, str] | None = None) -> None:
        env = os.environ if environ is None else environ
        address = env.get("NOTIFY_SOCKET", "")
        # "@name" is Linux's abstract namespace, spelt with a leading NUL byte.
        self._address = "\0" + address[1:] if address.startswith("@") else address
        self._socket: socket.socket | None = None
        if self._address:
            self._socket = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
        usec = env.get("WATCHDOG_USEC", "")
        pid = env.get("WATCHDOG_PID", "")
        mine = not pid or pid == str(os.getpid())
        self.watchdog_interval = int(usec) / 2e6 if usec.isdigit() and int(usec) > 0 and mine else None
        self._watchdog: asyncio.Task[None] | None = None

    def notify(self, message: str) -> None:
        if self._socket is None:
            return
        with contextlib.suppress(OSError):  # systemd is gone or the socket is not ours
            self._socket.sendto(message.encode(), self._address)

    def ready(self) -> None:
        self.notify("READY=1\nSTATUS=serving")
        if self.watchdog_interval is not None and self._watchdog is None:
            self._watchdog = asyncio.get_running_loop().create_task(self._keepalive(self.watchdog_interval))

    async def _keepalive(self, interval: float) -> None:
        while True:
            self.notify("WATCHDOG=1")
            await asyncio.sleep(interval)

    def stopping(self) -> None:
        if self._watchdog is not None:
            self._watchdog.cancel()
            self._watchdog = None
        self.notify("STOPPING=1")

    def close(self) -> None:
        if self._socket is not None:
            self._socket.close()
            self._socket = None
