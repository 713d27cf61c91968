"""Clients that try to hold ``wsmon serve``: half-sent requests (slowloris), many connections
from one address, and /probe floods, against a real process whose open-files limit is lowered
the way a small container has it (``prlimit``)."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.realservers import WsmonProcess
from tests.servers import HOST, MS

ATTACKER = "127.0.0.2"  # another loopback address than the one /metrics is asked from
HALF_A_REQUEST = b"GET /metrics HTTP/1.1\r\nHost: wsmon\r\nUser-Agent: slow"  # never the blank line


def limited(tmp_path: Path, open_files: int | None, *args: str) -> WsmonProcess:
    """``wsmon serve`` (no config) with ``args``, its open-files limit lowered to ``open_files``."""
    process = WsmonProcess(tmp_path, None, *args)
    if open_files is not None:
        process.argv = ["prlimit", f"--nofile={open_files}:{open_files}", *process.argv]
    return process


def duration(seconds: float) -> str:
    return f"{round(seconds * 1000)}ms"


async def half_sent(port: int, data: bytes = HALF_A_REQUEST) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    reader, writer = await asyncio.open_connection(HOST, port, local_addr=(ATTACKER, 0))
    writer.write(data)
    await writer.drain()
    return reader, writer


async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, timeout: float) -> bytes:
    """What wsmon sends before it closes the connection (b"" if it closes without a word)."""
    try:
        async with asyncio.timeout(timeout):
            return await reader.read()
    finally:
        writer.close()
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()


async def exchange(port: int, request: bytes, timeout: float) -> bytes:
    """Send ``request``, return wsmon's answer read as an HTTP client reads it: the head, then
    Content-Length bytes (b"" if the connection closes without a word). Raw socket reads, as a
    client's: a reset that comes after the whole answer loses nothing (a refused connection
    whose request was still unread is closed with one, after its 503)."""
    loop = asyncio.get_running_loop()
    with socket.socket() as sock:
        sock.setblocking(False)
        received = b""
        async with asyncio.timeout(timeout):
            await loop.sock_connect(sock, (HOST, port))
            await loop.sock_sendall(sock, request)
            while True:
                head, sep, body = received.partition(b"\r\n\r\n")
                if sep:
                    lengths = [li for li in head.lower().split(b"\r\n") if li.startswith(b"content-length:")]
                    if lengths and len(body) >= int(lengths[0].split(b":")[1]):
                        return received
                try:
                    chunk = await loop.sock_recv(sock, 65536)
                except ConnectionResetError:
                    return received
                if not chunk:
                    return received
                received += chunk


async def get(url: str) -> int:
    async with httpx.AsyncClient(timeout=10) as client:
        return (await client.get(url)).status_code


def status_of(response: bytes) -> int | None:
    return int(response.split(b" ", 2)[1]) if response.startswith(b"HTTP/1.1 ") else None


async def test_half_sent_requests_cannot_starve_metrics(tmp_path: Path) -> None:
    """Held connections beyond what the open-files limit allows: /metrics still answers, and
    every half-sent request is answered and closed (503 beyond the per-address cap, 408 at the
    read timeout)."""
    read_timeout = 3000 * MS
    with limited(tmp_path, 100, "--web.read-timeout", duration(read_timeout)) as wsmon:
        held = [await half_sent(wsmon.port) for _ in range(120)]
        answers = [asyncio.create_task(answer(r, w, read_timeout + 5)) for r, w in held]
        await asyncio.sleep(300 * MS)
        loop = asyncio.get_running_loop()
        began = loop.time()
        async with httpx.AsyncClient(timeout=read_timeout / 2) as client:
            metrics = await client.get(f"{wsmon.base}/metrics")
        assert metrics.status_code == 200
        assert loop.time() - began < read_timeout / 2
        statuses = [status_of(a) for a in await asyncio.gather(*answers)]
    # The default cap is an eighth of the open-files limit: 12 held until the read timeout, the
    # rest refused (on a slow machine, some of the last may take the place of timed-out ones).
    assert set(statuses) == {408, 503}, statuses
    assert statuses[:12] == [408] * 12
    assert 503 in statuses


async def test_headers_must_arrive_within_the_read_timeout(tmp_path: Path) -> None:
    read_timeout = 500 * MS
    with limited(tmp_path, None, "--web.read-timeout", duration(read_timeout)) as wsmon:
        loop = asyncio.get_running_loop()
        began = loop.time()
        silent = await half_sent(wsmon.port, b"")  # connects, says nothing
        partial = [await half_sent(wsmon.port) for _ in range(60)]

        async def dribble() -> bytes:
            reader, writer = await half_sent(wsmon.port, b"G")
            answered = asyncio.create_task(answer(reader, writer, read_timeout + 5))
            for byte in HALF_A_REQUEST[1:]:
                await asyncio.sleep(50 * MS)  # each byte well within the timeout, the whole not
                if answered.done():
                    break
                writer.write(bytes([byte]))
            return await answered

        dribbled = asyncio.create_task(dribble())
        answers = await asyncio.gather(*(answer(r, w, read_timeout + 5) for r, w in [silent, *partial]))
        elapsed = loop.time() - began
        # A complete request on a connection of its own is not bothered.
        assert await get(f"{wsmon.base}/-/healthy") == 200
        assert status_of(await dribbled) == 408
    assert {status_of(a) for a in answers} == {408}
    assert b"the request did not arrive in time" in answers[0]
    assert elapsed < read_timeout + 2


async def test_one_address_holds_a_bounded_number_of_connections(tmp_path: Path) -> None:
    with limited(tmp_path, None, "--web.max-connections-per-client", "5", "--web.read-timeout", "30s") as wsmon:
        held = [await half_sent(wsmon.port, b"") for _ in range(5)]
        await asyncio.sleep(100 * MS)
        reader, writer = await half_sent(wsmon.port, b"GET /-/healthy HTTP/1.1\r\nHost: wsmon\r\n\r\n")
        refused = await answer(reader, writer, 5)
        assert status_of(refused) == 503, refused
        assert b"\r\nretry-after: 1\r\n" in refused.lower()
        assert refused.endswith(b"too many connections from your address: try again later\n")
        assert await get(f"{wsmon.base}/-/healthy") == 200  # other addresses are not affected
        held[0][1].close()
        await asyncio.sleep(200 * MS)
        reader, writer = await half_sent(wsmon.port, b"GET /-/healthy HTTP/1.1\r\nHost: wsmon\r\n\r\n")
        assert status_of(await reader.readuntil(b"\r\n\r\n")) == 200  # a place came free
        writer.close()
        for _, other in held[1:]:
            other.close()


@pytest.fixture
def hanging_port() -> Iterator[int]:
    """A port that completes TCP handshakes and then never says a word (nobody accepts)."""
    with socket.socket() as listener:
        listener.bind((HOST, 0))
        listener.listen(1024)
        yield listener.getsockname()[1]


async def test_a_probe_flood_under_a_low_open_files_limit_gets_right_answers(tmp_path: Path, hanging_port: int) -> None:
    """250 probes of a hanging target at once with 200 descriptors: each answer is a probe that
    timed out or a 503 with Retry-After, never a probe failed for a wrong reason or a dropped
    connection."""
    with limited(tmp_path, 200, "--timeout", duration(2000 * MS)) as wsmon:
        path = f"/probe?target={quote(f'ws://{HOST}:{hanging_port}/', safe='')}"

        async def probe() -> bytes:
            request = f"GET {path} HTTP/1.1\r\nHost: wsmon\r\nConnection: close\r\n\r\n".encode()
            return await exchange(wsmon.port, request, 30)

        answers = await asyncio.gather(*(probe() for _ in range(250)))
        assert await get(f"{wsmon.base}/metrics") == 200
    probed = refused = 0
    for response in answers:
        head, _, body = response.partition(b"\r\n\r\n")
        if status_of(head) == 503:
            assert b"\r\nretry-after: 1" in head.lower(), head
            refused += 1
            continue
        assert status_of(head) == 200, response
        reasons = [
            s.labels["reason"]
            for family in text_string_to_metric_families(body.decode())
            for s in family.samples
            if s.name == "probe_websocket_failure_info"
        ]
        assert reasons == ["timeout"], body.decode()
        probed += 1
    # --web.max-probes by default: an eighth of 200, i.e. 25 at once. More may run in all when the
    # flood takes longer than a probe's timeout to arrive (a busy machine), but never all of it.
    assert probed >= 25 and refused > 0
    assert probed + refused == 250
