"""What the dashboard's browser tests share: Debian's Chromium driven by Playwright (``launch``, for
a module-scoped fixture; a module importing this one is skipped where Chromium is missing and
we are not root to install it), a page logged in with the login form, and a WebSocket server in
a thread that can be stopped and started again on its port.

Playwright's sync API refuses to run inside an event loop: the tests are plain ``def``
functions, wsmon runs in a subprocess and the WebSocket server in a thread. Screenshots land
in test-artifacts/.
"""

from __future__ import annotations

import asyncio
import os
import re
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests import servers
from tests.servers import MS

__all__ = ["ARTIFACTS", "CHROMIUM", "ThreadedServer", "launch", "log_in", "ms", "open_page"]

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--headless",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
]
if not Path(CHROMIUM).exists() and os.geteuid() != 0:
    pytest.skip(
        f"{CHROMIUM} is missing and we are not root to install it (scripts/install-system-deps does, as root)",
        allow_module_level=True,
    )

from playwright.sync_api import Browser, Page, expect, sync_playwright  # noqa: E402

ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts"
THREAD_TIMEOUT = 5000 * MS  # for the WebSocket server's thread to start or stop


def ms(seconds: float) -> float:
    """Playwright's unit: milliseconds."""
    return seconds * 1000


def launch() -> Iterator[Browser]:
    """Chromium for a module's tests: ``yield from launch()`` in its ``browser`` fixture."""
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: run scripts/install-system-deps (as root) to install Debian's chromium")
    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            yield chromium
        finally:
            chromium.close()


def open_page(browser: Browser, base: str, credentials: tuple[str, str], timeout: float, height: int = 760) -> Page:
    """A new browser (a context of its own: no cookie yet), logged in with the form and on the
    dashboard; Playwright waits up to ``timeout`` seconds."""
    context = browser.new_context(viewport={"width": 1400, "height": height})
    context.set_default_timeout(ms(timeout))
    page = context.new_page()
    page.goto(f"{base}/dashboard")
    log_in(page, base, credentials)
    return page


def log_in(page: Page, base: str, credentials: tuple[str, str]) -> None:
    """Fill in the login form the page is on; wait for the dashboard."""
    expect(page).to_have_url(re.compile(rf"^{re.escape(base)}/login(#ended)?$"))
    page.get_by_label("User name", exact=True).fill(credentials[0])
    page.get_by_label("Password", exact=True).fill(credentials[1])
    page.get_by_role("button", name="Log in", exact=True).click()
    expect(page).to_have_url(f"{base}/dashboard")
    expect(page.locator("#who")).to_have_text(re.compile(rf"^{re.escape(credentials[0])} \((admin|viewer)\)$"))


# --- a WebSocket server we can stop and start again on the same port ---------------------------


async def _conforming(peer: servers.Peer) -> None:
    await peer.upgrade()
    await peer.serve_frames()


class ThreadedServer:
    """``servers.raw_server`` on a fixed port, in a thread with its own event loop."""

    def __init__(self, port: int, backlog: int = 100) -> None:
        self.port = port
        self.backlog = backlog
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None

    def start(self) -> None:
        assert self._thread is None
        ready = threading.Event()
        failure: list[BaseException] = []

        async def main() -> None:
            self._stop = asyncio.Event()
            try:
                async with servers.raw_server(_conforming, port=self.port, backlog=self.backlog):
                    ready.set()
                    await self._stop.wait()
            except OSError as exc:  # the port still busy: report it to start()
                failure.append(exc)
                ready.set()

        def run() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            try:
                loop.run_until_complete(main())
            finally:
                loop.close()

        self._thread = threading.Thread(target=run, name=f"ws-server-{self.port}", daemon=True)
        self._thread.start()
        assert ready.wait(THREAD_TIMEOUT), "the WebSocket server did not start"
        if failure:
            self._thread.join(THREAD_TIMEOUT)
            self._thread = None
            raise failure[0]

    def stop(self) -> None:
        assert self._thread is not None and self._loop is not None and self._stop is not None
        self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(THREAD_TIMEOUT)
        assert not self._thread.is_alive(), "the WebSocket server did not stop"
        self._thread = None

    @property
    def running(self) -> bool:
        return self._thread is not None
