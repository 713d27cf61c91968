"""The probe: resolve → TCP connect → TLS → upgrade → pings → message steps → close.

``probe()`` is an async function returning an immutable ProbeResult. It never raises (but for
cancellation), knows nothing of Prometheus, and ends by its deadline whatever the peer does:
one deadline spans every phase, and a timeout is classified by the phase it hit.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from time import perf_counter
from typing import TYPE_CHECKING, Any

from wsmon.errors import ConnectionClosed, Failure, HandshakeError, TargetError
from wsmon.probe.deadline import Deadline
from wsmon.probe.failures import failure_of
from wsmon.probe.jsonpath import MISSING, NOT_JSON, load_json
from wsmon.probe.module import Module, Step
from wsmon.probe.opening import Opening
from wsmon.probe.phases import PhaseClock
from wsmon.probe.reasons import Phase, Reason
from wsmon.probe.result import PingStats, ProbeResult, StepResult
from wsmon.ws.connection import ClientConnection
from wsmon.ws.frames import TOO_LARGE
from wsmon.ws.url import TargetURL, parse_target

if TYPE_CHECKING:  # imported for its type only: it brings structlog, a tenth of a second to import
    from wsmon.probe.log import ProbeLog

__all__ = ["MAX_RESENDS", "probe"]

# A ping whose send time is in doubt (wsmon was preempted while sending it) is sent again, at
# most this many times a probe; after that its pong counts, untimed.
MAX_RESENDS = 2


class _ProbeConnection(ClientConnection):
    """Turns what the connection hears into the one future the probe is awaiting."""

    __slots__ = ("_loop", "_pong_payload", "_waiter", "_waiting_for")

    def __init__(
        self, request: bytes, key: str, loop: asyncio.AbstractEventLoop, subprotocols: tuple[str, ...], max_size: int
    ) -> None:
        super().__init__(request, key, loop, subprotocols, max_size)
        self._loop = loop
        self._waiter: asyncio.Future[Any] | None = None
        self._waiting_for: Phase | None = None
        self._pong_payload = b""

    @classmethod
    def for_module(cls, module: Module) -> Callable[[bytes, str, asyncio.AbstractEventLoop], _ProbeConnection]:
        def factory(request: bytes, key: str, loop: asyncio.AbstractEventLoop) -> _ProbeConnection:
            return cls(request, key, loop, module.subprotocols, module.max_message_size)

        return factory

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
        if self._waiting_for is None:
            return  # the usual end: the probe got what it awaited
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
        self.loop = asyncio.get_running_loop()
        self.deadline = self.loop.time() + timeout
        self.clock = PhaseClock(log)  # the phase in progress and each one's time, the opening's included
        self.opening = Opening(target, module, self.clock)
        self.conn: _ProbeConnection | None = None
        self.status_code: int | None = None
        self.subprotocol: str | None = None
        self.ping: PingStats | None = None
        self.steps: list[StepResult] = []
        self.step_started: tuple[int, float] | None = None  # (index, send time) of the step awaited

    async def run(self) -> ProbeResult:
        reason: Reason | None = None
        error = ""
        opening, clock = self.opening, self.clock
        timed = clock.timed
        try:
            with Deadline(self.loop, self.deadline):
                self.conn = conn = await opening.open(_ProbeConnection.for_module(self.module))
                assert conn.response is not None
                self.status_code, self.subprotocol = conn.response.status, conn.response.subprotocol
                if self.module.ping:
                    began = perf_counter()
                    await self._pings(conn)
                    timed(Phase.PING, began)
                if self.module.steps:
                    began = perf_counter()
                    await self._steps(conn)
                    timed(Phase.MESSAGE, began)
                clock.enter(Phase.CLOSE)
                began = perf_counter()
                conn.send_close(1000)
                await conn.wait(Phase.CLOSE)
                timed(Phase.CLOSE, began)
        except asyncio.CancelledError:
            if self.conn is not None:
                self.conn.go_away()  # wsmon is stopping: every open WebSocket gets its 1001
            raise
        except Exception as exc:
            if isinstance(exc, HandshakeError):
                self.status_code = exc.status
            elif isinstance(exc, TimeoutError) and self.step_started is not None:
                index, began = self.step_started
                self.steps.append(StepResult(index=index, success=False, duration=perf_counter() - began))
            reason, error = failure_of(exc, clock.phase, self.target.redacted)
        finally:
            if self.conn is not None:
                self.conn.abort_unless_closing()
        duration = perf_counter() - self.start
        if reason is not None and self.log is not None:
            self.log("probe failed", reason=str(reason), error=error)
        return ProbeResult(
            success=reason is None,
            duration=duration,
            timeout=self.timeout,
            reason=reason,
            error=error,
            up=self.conn is not None,
            phases=clock.phases,
            status_code=self.status_code,
            ip_protocol=opening.ip_protocol,
            tls_version=opening.tls_version,
            cert_expiry=opening.cert_expiry,
            subprotocol=self.subprotocol,
            ping=self.ping,
            steps=tuple(self.steps),
        )

    # --- pings and messages ---------------------------------------------------------------

    async def _pings(self, conn: _ProbeConnection) -> None:
        self.clock.enter(Phase.PING)
        module = self.module
        count = module.pings
        sent = resent = untimed = 0
        rtts: list[float] = []
        try:
            while (done := sent - resent) < count:  # pings that count: each sent one but those sent again
                if sent and module.ping_spacing:
                    await asyncio.sleep(module.ping_spacing)
                payload = sent.to_bytes(4, "big")
                waiter = conn.wait(Phase.PING, payload)
                sent_at = conn.send_ping(payload)
                sent += 1
                received = await waiter if count == 1 else await self._wait_share(waiter, count - done)
                if received is None:  # lost
                    continue
                if sent_at is not None:
                    rtts.append(received - sent_at)
                    if self.log is not None:
                        self.log("pong", seconds=round(received - sent_at, 6), ping=done + 1)
                elif resent < MAX_RESENDS:  # its send time is in doubt: this ping is sent again
                    resent += 1
                    if self.log is not None:
                        self.log("pong to a ping whose send was delayed: sending it again", ping=done + 1)
                else:
                    untimed += 1
        finally:
            self.ping = PingStats(sent=sent - resent, rtts=tuple(rtts), untimed=untimed)
        if len(rtts) + untimed < count:
            raise TimeoutError

    async def _wait_share(self, waiter: asyncio.Future[float], left: int) -> float | None:
        """Wait for one of ``left`` pongs with its share of the time left; None if lost.

        Several pings share what is left of the deadline, so one lost pong counts as loss
        instead of using up the time of the pings after it.
        """
        share = (self.deadline - self.loop.time()) / left
        try:
            async with asyncio.timeout(share):
                return await waiter
        except TimeoutError:  # only this share ran out: the probe's own deadline cancels instead
            return None

    async def _steps(self, conn: _ProbeConnection) -> None:
        self.clock.enter(Phase.MESSAGE)
        conn.parser.keep_data = True
        for index, step in enumerate(self.module.steps):
            await self._step(conn, index, step)
        conn.parser.keep_data = False

    async def _step(self, conn: _ProbeConnection, index: int, step: Step) -> None:
        waiter = conn.wait(Phase.MESSAGE) if step.waits else None
        began = conn.send_text(step.send) if step.send is not None else perf_counter()
        if waiter is None:
            self.steps.append(StepResult(index=index, success=True, duration=0.0))
            return
        self.step_started = (index, began)
        opcode, payload, received = await waiter
        self.step_started = None
        duration = received - began
        outcome = _check_message(step, opcode, payload)
        if isinstance(outcome, Failure):
            mismatch = outcome.reason is Reason.MESSAGE_MISMATCH
            self.steps.append(StepResult(index, False, duration, failed_due_to_regex=mismatch))
            raise outcome
        name = step.value_name if step.extract else None
        self.steps.append(StepResult(index, True, duration, value_name=name, value=outcome))
        if self.log is not None:
            self.log("message step done", step=index + 1, seconds=round(duration, 6), value=outcome)


def _check_message(step: Step, opcode: int, payload: bytes) -> Failure | float | None:
    """The extracted value (or None) if the message meets the step's expectations."""
    if opcode == TOO_LARGE:
        return Failure(Reason.MESSAGE_TOO_LARGE, "the answer exceeds max_message_size")
    text = payload.decode("utf-8", errors="replace")
    if step.expect is not None and step.expect.search(text) is None:
        return Failure(Reason.MESSAGE_MISMATCH, f"the answer does not match {step.expect.pattern!r}")
    if step.expect_json is None and step.extract is None:
        return None
    document = load_json(text)
    if document is NOT_JSON:
        return Failure(Reason.MESSAGE_MISMATCH, "the answer is not JSON")
    if step.expect_json is not None and step.expect_json.find(document) is MISSING:
        return Failure(Reason.MESSAGE_MISMATCH, f"the answer has no {step.expect_json.text}")
    if step.extract is None:
        return None
    value = step.extract.number(document)
    if value is None:
        return Failure(Reason.MESSAGE_MISMATCH, f"no number at {step.extract.text} in the answer")
    return value
