"""Pushing every target's series to VictoriaMetrics/vmagent or a Pushgateway, on a timer.

Each destination has its own task, client and timeout: a dead or slow one holds up neither
probing, nor ``/metrics``, nor the other destinations. Nothing queues: a push sends the
current cumulative state, so after an outage the next success carries every probe counted
in between (no probe is lost), and memory stays flat however long the outage.
"""

from __future__ import annotations

import asyncio
import base64
import random
import time
import zlib
from collections.abc import AsyncIterator, Awaitable, Callable
from time import perf_counter
from urllib.parse import quote

import httpx
import structlog

from wsmon import __version__
from wsmon.config.push import PushTarget
from wsmon.metrics.exporter import ExporterMetrics
from wsmon.metrics.remote_write import HEADERS as REMOTE_WRITE_HEADERS
from wsmon.redact import redact_url, secrets
from wsmon.ws.tls import client_context

__all__ = ["FINAL_PUSH_LIMIT", "PushManager", "Pusher", "RemoteWrite", "Render", "grouping_path", "gzip_chunks"]

log = structlog.get_logger("wsmon.push")

# Seconds the final push (or the Pushgateway DELETE) may take at shutdown, at most: the
# destinations are told in parallel, so wsmon exits within this whatever they do.
FINAL_PUSH_LIMIT = 2.0
_RETRY_FIRST = 1.0  # seconds before the first retry after a failure; doubles up to the interval

Render = Callable[[], AsyncIterator[bytes]]  # the series to push, as text chunks (series.stream_store)
# (timestamp in ms, labels for every series) → (remote write body, its size uncompressed): series.remote_write_body
RemoteWrite = Callable[[int, tuple[tuple[str, str], ...]], Awaitable[tuple[bytes, int]]]

# Text compressed at a time, in a worker thread (zlib lets go of the GIL, so the event loop
# keeps running while the other core compresses): ~1 MB, a few ms of level-1 deflate.
_GZIP_BATCH = 1 << 20


async def gzip_chunks(chunks: AsyncIterator[bytes]) -> tuple[bytes, int]:
    """gzip (level 1) of the chunks, compressed as they come, and their size before compression.

    The text is never whole in memory (35 MB at 10,000 persistent targets), only its
    compressed form (~1/20 of it), which the request needs whole.
    """
    compressor = zlib.compressobj(1, zlib.DEFLATED, 16 + zlib.MAX_WBITS)  # 16 +: gzip framing

    def last(data: bytes) -> bytes:
        return compressor.compress(data) + compressor.flush()

    compressed: list[bytes] = []
    batch: list[bytes] = []
    pending = size = 0
    async for chunk in chunks:
        batch.append(chunk)
        pending += len(chunk)
        if pending >= _GZIP_BATCH:
            compressed.append(await asyncio.to_thread(compressor.compress, b"".join(batch)))
            size += pending
            batch.clear()
            pending = 0
    compressed.append(await asyncio.to_thread(last, b"".join(batch)))
    return b"".join(compressed), size + pending


def _segment(name: str, value: str) -> str:
    """One grouping-key pair of a Pushgateway URL, base64url where a plain one cannot carry it."""
    if value and "/" not in value:
        return f"/{name}/{quote(value, safe='')}"
    return f"/{name}@base64/{base64.urlsafe_b64encode(value.encode()).decode() or '='}"


def grouping_path(job: str, labels: tuple[tuple[str, str], ...]) -> str:
    """``/metrics/job/<job>{/<label>/<value>}``, as the Pushgateway's API wants it."""
    return "/metrics" + _segment("job", job) + "".join(_segment(k, v) for k, v in labels)


class Pusher:
    def __init__(
        self,
        target: PushTarget,
        render: Render,
        metrics: ExporterMetrics,
        client: httpx.AsyncClient | None = None,
        *,
        remote_write: RemoteWrite | None = None,
    ) -> None:
        self.target = target
        self._render = render
        self._remote_write = remote_write
        self._metrics = metrics
        tls = target.tls
        self._client = client or httpx.AsyncClient(
            timeout=target.timeout,
            verify=client_context(tls) if target.url.startswith("https") else True,
            trust_env=False,  # no surprise proxies from *_proxy variables
        )
        headers = {"User-Agent": f"wsmon/{__version__}"}
        if target.authorization:
            headers["Authorization"] = target.authorization
        self._headers = headers
        # tls.server_name: the name sent in SNI and checked in the certificate, not the URL's host.
        self._extensions = {"sni_hostname": tls.server_name} if tls.server_name else {}
        self._task: asyncio.Task[None] | None = None
        self._shown = redact_url(target.url)
        self.refused = False  # the last push was refused for good (remote write's 4xx but 429)

    def _group(self) -> str:
        return grouping_path(self.target.job, (("instance", self.target.instance), *self.target.extra_labels))

    async def push(self) -> bool:
        """Send the current state once; True if the destination took it."""
        target, started = self.target, perf_counter()
        self.refused = False
        if target.kind == "remote_write":
            assert self._remote_write is not None, "a remote_write destination needs the encoder"
            labels = (("job", target.job), *target.extra_labels)
            content, size = await self._remote_write(int(time.time() * 1000), labels)
        elif target.kind == "victoriametrics":
            content, size = await gzip_chunks(self._render())
        else:  # sent as it is: the Pushgateway takes no compressed body
            content = b"".join([chunk async for chunk in self._render()])
            size = len(content)
        try:
            if target.kind == "remote_write":
                response = await self._client.post(
                    target.url,
                    content=content,
                    headers={**self._headers, **REMOTE_WRITE_HEADERS},
                    extensions=self._extensions,
                )
                ok = 200 <= response.status_code < 300
                # A 4xx other than 429 says the request itself is refused: the same again would be too.
                self.refused = 400 <= response.status_code < 500 and response.status_code != 429
            elif target.kind == "victoriametrics":
                extra = [f"job={target.job}", *(f"{k}={v}" for k, v in target.extra_labels)]
                response = await self._client.post(
                    f"{target.url}/api/v1/import/prometheus",
                    params={"extra_label": extra},
                    content=content,
                    headers={**self._headers, "Content-Encoding": "gzip", "Content-Type": "text/plain"},
                    extensions=self._extensions,
                )
                ok = response.status_code == 204
            else:
                response = await self._client.put(
                    f"{target.url}{self._group()}",
                    content=content,
                    headers={**self._headers, "Content-Type": "text/plain; version=0.0.4"},
                    extensions=self._extensions,
                )
                ok = 200 <= response.status_code < 300
            problem = "" if ok else f"HTTP {response.status_code}: {response.text[:200].strip()}"
        except httpx.HTTPError as exc:
            ok, problem = False, f"{type(exc).__name__}: {exc}"
        elapsed = perf_counter() - started
        metrics = self._metrics
        metrics.push_total.labels(target.name, "success" if ok else "failure").inc()
        metrics.push_duration.labels(target.name).set(elapsed)
        metrics.push_bytes.labels(target.name).set(size)
        if ok:
            metrics.push_last_success.labels(target.name).set(time.time())
        else:
            log.warning("push failed", push=target.name, url=self._shown, error=secrets.scrub(problem))
        return ok

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        interval = self.target.interval
        due = loop.time() + interval
        failures = 0
        while True:
            await asyncio.sleep(max(0.0, due - loop.time()))
            if await self.push() or self.refused:
                failures = 0
                due = max(due + interval, loop.time())
            else:
                # Retry sooner than the interval, backing off; each try sends fresh state.
                failures += 1
                delay = min(interval, _RETRY_FIRST * 2 ** (failures - 1)) * random.uniform(0.5, 1.0)
                due = loop.time() + delay

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self, *, final: bool) -> None:
        """Stop pushing; with ``final``, push once more (or delete the Pushgateway group)."""
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        limit = min(self.target.timeout, FINAL_PUSH_LIMIT)
        try:
            async with asyncio.timeout(limit):  # a destination that never answers must not hold up the exit
                if final and self.target.kind == "pushgateway" and self.target.delete_on_shutdown:
                    response = await self._client.delete(
                        f"{self.target.url}{self._group()}", headers=self._headers, extensions=self._extensions
                    )
                    if response.status_code >= 300:
                        log.warning(
                            "deleting the push group failed", push=self.target.name, status=response.status_code
                        )
                elif final:
                    await self.push()
        except TimeoutError:
            log.warning("final push gave up: no answer in time", push=self.target.name, seconds=limit)
        except httpx.HTTPError as exc:
            log.warning("final push failed", push=self.target.name, error=secrets.scrub(str(exc)))
        finally:
            await self._client.aclose()


class PushManager:
    """The running Pushers, matched to the configured destinations on start and reload."""

    def __init__(self, render: Render, metrics: ExporterMetrics, remote_write: RemoteWrite | None = None) -> None:
        self._render, self._metrics, self._remote_write = render, metrics, remote_write
        self._pushers: dict[str, Pusher] = {}
        self._stopping: set[asyncio.Task[None]] = set()  # destinations removed by a reload

    def apply(self, targets: tuple[PushTarget, ...]) -> None:
        wanted = {t.name: t for t in targets}
        for name, pusher in list(self._pushers.items()):
            if wanted.get(name) != pusher.target:
                stopping = asyncio.get_running_loop().create_task(self._pushers.pop(name).stop(final=False))
                self._stopping.add(stopping)
                stopping.add_done_callback(self._stopping.discard)
        for name, target in wanted.items():
            if name not in self._pushers:
                pusher = Pusher(target, self._render, self._metrics, remote_write=self._remote_write)
                self._pushers[name] = pusher
                pusher.start()

    async def stop(self) -> None:
        await asyncio.gather(*self._stopping, *(p.stop(final=True) for p in self._pushers.values()))
        self._pushers.clear()
