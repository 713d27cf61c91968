"""The probe: resolve → TCP connect → TLS → upgrade → pings → message steps → close.

``probe()`` is an async function returning an immutable ProbeResult. It never raises (but for
cancellation), knows nothing of Prometheus, and ends by its deadline whatever the peer does:
one ``asyncio.timeout`` spans every phase, and a timeout is classified by the phase it hit.
"""

from __future__ import annotations

import asyncio
import json
import socket
import ssl
from time import perf_counter
from typing import Any

import structlog

from wsmon.connection import ClientConnection, ConnectionClosed
from wsmon.errors import TargetError
from wsmon.frames import TOO_LARGE, ProtocolError
from wsmon.handshake import HandshakeError, Response, build_request, new_key
from wsmon.jsonpath import MISSING, to_number
from wsmon.modules import Module, Step
from wsmon.probe_log import ProbeLog
from wsmon.proxy import ProxyError, parse_proxy, proxy_connect
from wsmon.reasons import Phase, Reason, classify
from wsmon.redact import secrets
from wsmon.result import PingStats, ProbeResult, StepResult
from wsmon.target_url import TargetURL, parse_target
from wsmon.tls import certificate_expiry, client_context

__all__ = ["probe"]

_FAMILIES = {"ip4": socket.AF_INET, "ip6": socket.AF_INET6}


class _StepFailed(Exception):
    def __init__(self, reason: Reason, message: str) -> None:
        super().__init__(message)
        self.reason = reason


class _ProbeConnection(ClientConnection):
    """Turns what the connection hears into the one future the probe is awaiting."""

    def __init__(self, *args: Any, loop: asyncio.AbstractEventLoop) -> None:
        super().__init__(*args)
        self._loop = loop
        self._waiter: asyncio.Future[Any] | None = None
        self._waiting_for: Phase | None = None
        self._pong_payload = b""

    def wait(self, phase: Phase, pong_payload: bytes = b"") -> asyncio.Future[Any]:
        waiter = self._loop.create_future()
        self._waiter, self._waiting_for, self._pong_payload = waiter, phase, pong_payload
        if self.is_lost:
            self.lost(None)
        return waiter

    def _settle(self, result: Any = None, exc: BaseException | None = None) -> None:
        waiter = self._waiter
        if waiter is None or waiter.done():
            return
        self._waiter = self._waiting_for = None
        if exc is None:
            waiter.set_result(result)
        else:
            waiter.set_exception(exc)

    def handshake_done(self, response: Response, now: float) -> None:
        if self._waiting_for is Phase.UPGRADE:
            self._settle(response)

    def pong_received(self, payload: bytes, now: float) -> None:
        # Unsolicited pongs (and late answers to earlier pings) are allowed: match the payload.
        if self._waiting_for is Phase.PING and payload == self._pong_payload:
            self._settle(now)

    def message_received(self, opcode: int, payload: bytes, now: float) -> None:
        if self._waiting_for is Phase.MESSAGE:
            self._settle((opcode, payload, now))

    def close_received(self, code: int) -> None:
        if self._waiting_for is Phase.CLOSE:
            self._settle(code)
        else:
            self._settle(exc=ConnectionClosed(f"the server closed the WebSocket (code {code})"))

    def failed(self, exc: Exception) -> None:
        self._settle(exc=exc)

    def lost(self, exc: Exception | None) -> None:
        if self._waiting_for is Phase.CLOSE:
            self._settle(None)
        else:
            why = f": {exc}" if exc else ""
            self._settle(exc=ConnectionClosed(f"the server closed the connection{why}"))


async def probe(url: str, module: Module, timeout: float, *, log: ProbeLog | None = None) -> ProbeResult:
    """Probe ``url`` with ``module``'s settings; done within ``timeout`` seconds."""
    start = perf_counter()
    try:
        target = parse_target(url)
    except TargetError as exc:
        return ProbeResult(
            success=False,
            duration=perf_counter() - start,
            timeout=timeout,
            reason=Reason.INVALID_TARGET,
            error=str(exc),
        )
    return await _Probe(target, module, timeout, log, start).run()


class _Probe:
    """The mutable state of one probe run; it ends as a ProbeResult."""

    def __init__(self, target: TargetURL, module: Module, timeout: float, log: ProbeLog | None, start: float) -> None:
        self.target, self.module, self.timeout, self.log, self.start = target, module, timeout, log, start
        self.deadline = asyncio.get_running_loop().time() + timeout
        self.phase = Phase.RESOLVE
        self.phases: dict[str, float] = {}
        self.conn: _ProbeConnection | None = None
        self.transport: asyncio.Transport | None = None
        self.status_code: int | None = None
        self.ip_protocol: int | None = None
        self.tls_version: str | None = None
        self.cert_expiry: float | None = None
        self.subprotocol: str | None = None
        self.ping: PingStats | None = None
        self.steps: list[StepResult] = []

    def _timed(self, phase: Phase, began: float, **details: Any) -> float:
        now = perf_counter()
        self.phases[phase] = now - began
        if self.log is not None:
            self.log(f"{phase} done", seconds=round(now - began, 6), **details)
        return now

    async def run(self) -> ProbeResult:
        reason: Reason | None = None
        error = ""
        try:
            async with asyncio.timeout(self.timeout):
                await self._open()
                if self.module.ping:
                    began = perf_counter()
                    await self._pings()
                    self._timed(Phase.PING, began)
                if self.module.steps:
                    began = perf_counter()
                    await self._steps()
                    self._timed(Phase.MESSAGE, began)
                self.phase = Phase.CLOSE
                began = perf_counter()
                assert self.conn is not None
                self.conn.send_close(1000)
                await self.conn.wait(Phase.CLOSE)
                self._timed(Phase.CLOSE, began)
        except TimeoutError:
            reason, error = classify(TimeoutError(), self.phase), f"timed out during {self.phase}"
        except HandshakeError as exc:
            self.status_code = exc.status
            reason = Reason.HTTP_STATUS if exc.status not in (None, 101) else Reason.HANDSHAKE
            error = str(exc)
        except _StepFailed as exc:
            reason, error = exc.reason, str(exc)
        except ConnectionClosed as exc:
            reason, error = Reason.CLOSED, f"{exc} during {self.phase}"
        except ProtocolError as exc:
            reason, error = Reason.PROTOCOL, f"protocol error during {self.phase}: {exc}"
        except ProxyError as exc:
            reason, error = Reason.PROXY, str(exc)
        except (OSError, EOFError, ssl.CertificateError) as exc:
            reason = classify(exc, self.phase)
            error = f"{self.phase} failed: {_describe(exc)}"
        except Exception as exc:  # a bug in wsmon: report it, never let it take /probe down
            reason, error = Reason.INTERNAL, f"internal error during {self.phase}: {_describe(exc)}"
            structlog.get_logger("wsmon.probe").error(
                "probe crashed", target=self.target.redacted, error=secrets.scrub(repr(exc))
            )
        finally:
            if self.transport is not None and not self.transport.is_closing():
                self.transport.abort()
        duration = perf_counter() - self.start
        if reason is not None and self.log is not None:
            self.log("probe failed", reason=str(reason), error=error)
        return ProbeResult(
            success=reason is None,
            duration=duration,
            timeout=self.timeout,
            reason=reason,
            error=secrets.scrub(error),
            up=self.conn is not None and self.conn.response is not None,
            phases=self.phases,
            status_code=self.status_code,
            ip_protocol=self.ip_protocol,
            tls_version=self.tls_version,
            cert_expiry=self.cert_expiry,
            subprotocol=self.subprotocol,
            ping=self.ping,
            steps=tuple(self.steps),
        )

    # --- opening --------------------------------------------------------------------------

    async def _resolve(self, loop: asyncio.AbstractEventLoop, host: str, port: int) -> list[tuple[int, Any]]:
        """Addresses to try, preferred protocol first; an IP literal needs no lookup."""
        module = self.module
        infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        addresses: list[tuple[int, Any]] = [(family, sockaddr) for family, _, _, _, sockaddr in infos]
        if module.ip_protocol != "auto":
            wanted = _FAMILIES[module.ip_protocol]
            preferred = [a for a in addresses if a[0] == wanted]
            others = [a for a in addresses if a[0] != wanted] if module.ip_protocol_fallback else []
            addresses = preferred + others
        if not addresses:
            raise socket.gaierror(f"no {module.ip_protocol} address for the host")
        return addresses

    async def _connect(self, loop: asyncio.AbstractEventLoop, addresses: list[tuple[int, Any]]) -> socket.socket:
        last: OSError | None = None
        for family, sockaddr in addresses:
            sock = socket.socket(family, socket.SOCK_STREAM)
            try:
                sock.setblocking(False)
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                await loop.sock_connect(sock, sockaddr)
            except OSError as exc:
                sock.close()
                last = exc
                continue
            except BaseException:
                sock.close()
                raise
            self.ip_protocol = 6 if family == socket.AF_INET6 else 4
            return sock
        assert last is not None
        raise last

    async def _open(self) -> None:
        loop = asyncio.get_running_loop()
        target, module = self.target, self.module
        proxy = parse_proxy(module.proxy_url)
        dial_host, dial_port = (proxy.host, proxy.port) if proxy else (target.host, target.port)
        began = perf_counter()
        addresses = await self._resolve(loop, dial_host, dial_port)
        began = self._timed(Phase.RESOLVE, began)
        self.phase = Phase.CONNECT
        sock = await self._connect(loop, addresses)
        try:
            if proxy is not None:
                await proxy_connect(loop, sock, target, proxy)
            began = self._timed(Phase.CONNECT, began)
            self.phase = Phase.TLS if target.secure else Phase.UPGRADE
            key = new_key()
            headers = module.request_headers()
            if target.basic_auth and not any(k.lower() == "authorization" for k, _ in headers):
                headers = (*headers, ("Authorization", f"Basic {target.basic_auth}"))
            request = build_request(target.host_header, target.resource, key, headers, module.subprotocols)
            conn = _ProbeConnection(request, key, module.subprotocols, module.max_message_size, loop=loop)
            context = client_context(module.tls) if target.secure else None
            server_name = (module.tls.server_name or target.host) if context else None
            transport, _ = await loop.create_connection(
                lambda: conn, sock=sock, ssl=context, server_hostname=server_name
            )
        except BaseException:
            sock.close()
            raise
        self.conn, self.transport = conn, transport
        if context is not None:
            ssl_object = transport.get_extra_info("ssl_object")
            self.tls_version = ssl_object.version() if ssl_object else None
            self.cert_expiry = certificate_expiry(ssl_object)
            began = self._timed(Phase.TLS, began, version=self.tls_version)
            self.phase = Phase.UPGRADE
        response: Response = await conn.wait(Phase.UPGRADE) if conn.response is None else conn.response
        self.status_code = response.status
        self.subprotocol = response.subprotocol
        self._timed(Phase.UPGRADE, began, status=response.status)

    # --- pings and messages ---------------------------------------------------------------

    async def _pings(self) -> None:
        self.phase = Phase.PING
        conn, module = self.conn, self.module
        assert conn is not None
        count = module.pings
        sent = 0
        rtts: list[float] = []
        try:
            for i in range(count):
                if i and module.ping_spacing:
                    await asyncio.sleep(module.ping_spacing)
                payload = i.to_bytes(4, "big")
                waiter = conn.wait(Phase.PING, payload)
                sent_at = conn.send_ping(payload)
                sent += 1
                received = await waiter if count == 1 else await self._wait_share(waiter, count - i)
                if received is not None:
                    rtts.append(received - sent_at)
                    if self.log is not None:
                        self.log("pong", seconds=round(received - sent_at, 6), ping=i + 1)
        finally:
            self.ping = PingStats(sent=sent, rtts=tuple(rtts))
        if len(rtts) < count:
            raise TimeoutError

    async def _wait_share(self, waiter: asyncio.Future[float], left: int) -> float | None:
        """Wait for one of ``left`` pongs with its share of the time left; None if lost.

        Several pings share what is left of the deadline, so one lost pong counts as loss
        instead of using up the time of the pings after it.
        """
        share = (self.deadline - asyncio.get_running_loop().time()) / left
        try:
            async with asyncio.timeout(share):
                return await waiter
        except TimeoutError:  # only this share ran out: the probe's own deadline cancels instead
            return None

    async def _steps(self) -> None:
        conn = self.conn
        assert conn is not None
        self.phase = Phase.MESSAGE
        conn.parser.keep_data = True
        for index, step in enumerate(self.module.steps):
            began = perf_counter()
            try:
                await self._step(conn, index, step, began)
            except TimeoutError:
                self.steps.append(StepResult(index=index, success=False, duration=perf_counter() - began))
                raise
        conn.parser.keep_data = False

    async def _step(self, conn: _ProbeConnection, index: int, step: Step, began: float) -> None:
        waiter = conn.wait(Phase.MESSAGE) if step.waits else None
        if step.send is not None:
            began = conn.send_text(step.send)
        if waiter is None:
            self.steps.append(StepResult(index=index, success=True, duration=0.0))
            return
        opcode, payload, received = await waiter
        duration = received - began
        failure = _check_message(step, opcode, payload)
        if isinstance(failure, _StepFailed):
            mismatch = failure.reason is Reason.MESSAGE_MISMATCH
            self.steps.append(StepResult(index, False, duration, failed_due_to_regex=mismatch))
            raise failure
        value = failure
        self.steps.append(
            StepResult(index, True, duration, value_name=step.value_name if step.extract else None, value=value)
        )
        if self.log is not None:
            self.log("message step done", step=index + 1, seconds=round(duration, 6), value=value)


def _check_message(step: Step, opcode: int, payload: bytes) -> _StepFailed | float | None:
    """The extracted value (or None) if the message meets the step's expectations."""
    if opcode == TOO_LARGE:
        return _StepFailed(Reason.MESSAGE_TOO_LARGE, "the answer exceeds max_message_size")
    text = payload.decode("utf-8", errors="replace")
    if step.expect is not None and step.expect.search(text) is None:
        return _StepFailed(Reason.MESSAGE_MISMATCH, f"the answer does not match {step.expect.pattern!r}")
    if step.expect_json is None and step.extract is None:
        return None
    try:
        document = json.loads(text)
    except ValueError:
        return _StepFailed(Reason.MESSAGE_MISMATCH, "the answer is not JSON")
    if step.expect_json is not None and step.expect_json.find(document) is MISSING:
        return _StepFailed(Reason.MESSAGE_MISMATCH, f"the answer has no {step.expect_json.text}")
    if step.extract is None:
        return None
    value = to_number(step.extract.find(document))
    if value is None:
        return _StepFailed(Reason.MESSAGE_MISMATCH, f"no number at {step.extract.text} in the answer")
    return value


def _describe(exc: BaseException) -> str:
    """An exception as one line a user can read, e.g. ``[Errno 111] Connection refused``."""
    if isinstance(exc, ssl.SSLCertVerificationError):
        return f"certificate verify failed: {exc.verify_message}"
    text = str(exc) or type(exc).__name__
    return text.splitlines()[0]
