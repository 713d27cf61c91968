"""The probe: resolve → TCP connect → TLS → upgrade → pings → message steps → close.

``probe()`` is an async function returning an immutable ProbeResult. It never raises (but for
cancellation), knows nothing of Prometheus, and ends by its deadline whatever the peer does:
one deadline spans every phase, and a timeout is classified by the phase it hit.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import math
import socket
import ssl
import weakref
from collections.abc import Callable
from heapq import heapify, heappop, heappush
from time import perf_counter
from typing import TYPE_CHECKING, Any

from wsmon.connection import ClientConnection, ConnectionClosed
from wsmon.errors import TargetError
from wsmon.frames import TOO_LARGE, ProtocolError
from wsmon.handshake import HandshakeError
from wsmon.jsonpath import MISSING, to_number
from wsmon.modules import Module, Step
from wsmon.opening import Opening
from wsmon.proxy import ProxyError
from wsmon.reasons import Phase, Reason, classify
from wsmon.redact import secrets
from wsmon.result import PingStats, ProbeResult, StepResult
from wsmon.target_url import TargetURL, parse_target

if TYPE_CHECKING:  # imported for its type only: it brings structlog, a tenth of a second to import
    from wsmon.probe_log import ProbeLog

__all__ = ["probe"]

_FAMILIES = {"ip4": socket.AF_INET, "ip6": socket.AF_INET6}


class _Deadline:
    """What ``asyncio.timeout`` does for a probe's task, on a timer shared with other probes.

    At ``when`` (loop time) the task is cancelled, and leaving the block turns that cancellation
    into TimeoutError; any other cancellation goes through. ``asyncio.timeout`` starts a timer
    per probe, which on uvloop is a libuv handle made, started, stopped and closed: ~7 µs of CPU
    per probe on the probe bench, against ~1 µs for an entry in the loop's ``_DeadlineQueue``.
    The entry goes in when the deadline is made: make it in the ``with`` statement itself.
    """

    __slots__ = ("_cancelling", "_expired", "_queue", "task", "when")

    def __init__(self, loop: asyncio.AbstractEventLoop, when: float) -> None:
        task = asyncio.current_task(loop)
        assert task is not None, "a probe runs in a task"
        self.task: asyncio.Task[Any] | None = task  # None once the block is left
        self.when = when
        self._cancelling = task.cancelling()
        self._expired = False
        queue = _queues.get(loop)
        if queue is None:
            queue = _queues[loop] = _DeadlineQueue()
        self._queue = queue
        queue.add(self, loop)

    def expire(self) -> None:
        assert self.task is not None
        self._expired = True
        self.task.cancel()

    def __enter__(self) -> None:
        return None

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: object) -> None:
        task, self.task = self.task, None
        assert task is not None
        self._queue.running -= 1
        if self._expired and exc_type is asyncio.CancelledError and task.uncancel() <= self._cancelling:
            raise TimeoutError from exc


class _DeadlineQueue:
    """The deadlines of the probes on one event loop, in a heap served by one timer at a time.

    A timer is set for the earliest deadline, and another only when an earlier one comes in: with
    one timeout for all probes, a timer goes off about once per timeout, whatever the rate of
    probes. A probe that ends only marks its entry done (and lets go of its task); done entries
    leave the heap when they reach its top, or in a batch when they outnumber the running ones.
    The queue holds no reference to its loop, or to a task once no probe runs on it: the loop
    is a weak key of ``_queues``, and must stay free to go.
    """

    def __init__(self) -> None:
        self._heap: list[tuple[float, int, _Deadline]] = []
        self._order = itertools.count()  # ties are broken by arrival, never by comparing entries
        self._timer_at = math.inf  # when the timer that serves the heap goes off
        self.running = 0

    def add(self, deadline: _Deadline, loop: asyncio.AbstractEventLoop) -> None:
        heap = self._heap
        while heap and heap[0][2].task is None:
            heappop(heap)
        if len(heap) > _COMPACT_ABOVE and len(heap) > 2 * self.running:
            heap[:] = [item for item in heap if item[2].task is not None]
            heapify(heap)
        heappush(heap, (deadline.when, next(self._order), deadline))
        self.running += 1
        if deadline.when < self._timer_at:
            self._set_timer(loop, deadline.when)

    def _set_timer(self, loop: asyncio.AbstractEventLoop, when: float) -> None:
        self._timer_at = when
        loop.call_at(when, self._expire, when)

    def _expire(self, set_for: float) -> None:
        if set_for != self._timer_at:
            return  # an earlier deadline came in since: the timer set for it serves the heap
        loop = asyncio.get_running_loop()
        now = loop.time()
        heap = self._heap
        while heap and (heap[0][0] <= now or heap[0][2].task is None):
            deadline = heappop(heap)[2]
            if deadline.task is not None:
                deadline.expire()
        if heap:
            self._set_timer(loop, heap[0][0])
        else:
            self._timer_at = math.inf


_COMPACT_ABOVE = 1024  # entries in a heap from which done ones are swept out in a batch
_queues: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _DeadlineQueue] = weakref.WeakKeyDictionary()


class _StepFailed(Exception):
    def __init__(self, reason: Reason, message: str) -> None:
        super().__init__(message)
        self.reason = reason


class _ProbeConnection(ClientConnection):
    """Turns what the connection hears into the one future the probe is awaiting."""

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
        self.opening = Opening(target, module, log)
        self.conn: _ProbeConnection | None = None
        self.status_code: int | None = None
        self.subprotocol: str | None = None
        self.ping: PingStats | None = None
        self.steps: list[StepResult] = []
        self.step_started: tuple[int, float] | None = None  # (index, send time) of the step awaited

    async def run(self) -> ProbeResult:
        reason: Reason | None = None
        error = ""
        opening = self.opening
        timed = opening.timed
        try:
            with _Deadline(self.loop, self.deadline):
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
                opening.phase = Phase.CLOSE
                began = perf_counter()
                conn.send_close(1000)
                await conn.wait(Phase.CLOSE)
                timed(Phase.CLOSE, began)
        except TimeoutError:
            reason, error = classify(TimeoutError(), opening.phase), f"timed out during {opening.phase}"
            if self.step_started is not None:
                index, began = self.step_started
                self.steps.append(StepResult(index=index, success=False, duration=perf_counter() - began))
        except HandshakeError as exc:
            self.status_code = exc.status
            reason = Reason.HTTP_STATUS if exc.status not in (None, 101) else Reason.HANDSHAKE
            error = str(exc)
        except _StepFailed as exc:
            reason, error = exc.reason, str(exc)
        except ConnectionClosed as exc:
            reason, error = Reason.CLOSED, f"{exc} during {opening.phase}"
        except ProtocolError as exc:
            reason, error = Reason.PROTOCOL, f"protocol error during {opening.phase}: {exc}"
        except ProxyError as exc:
            reason, error = Reason.PROXY, str(exc)
        except (OSError, EOFError, ssl.CertificateError) as exc:
            reason = classify(exc, opening.phase)
            error = f"{opening.phase} failed: {_describe(exc)}"
        except UnicodeError:  # the IDNA codec refuses the host name (empty or over-long labels)
            reason, error = Reason.INVALID_TARGET, "the target's host name is not a valid DNS name"
        except Exception as exc:  # a bug in wsmon: report it, never let it take /probe down
            reason, error = Reason.INTERNAL, f"internal error during {opening.phase}: {_describe(exc)}"
            import structlog  # here, not at the top: the hot path never logs (see ProbeLog above)

            structlog.get_logger("wsmon.probe").error(
                "probe crashed", target=self.target.redacted, error=secrets.scrub(repr(exc))
            )
        finally:
            if self.conn is not None:
                self.conn.abort_unless_closing()
        duration = perf_counter() - self.start
        if reason is not None:
            if self.log is not None:
                self.log("probe failed", reason=str(reason), error=error)
            error = secrets.scrub(error)
        return ProbeResult(
            success=reason is None,
            duration=duration,
            timeout=self.timeout,
            reason=reason,
            error=error,
            up=self.conn is not None,
            phases=opening.phases,
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
        self.opening.phase = Phase.PING
        module = self.module
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
        share = (self.deadline - self.loop.time()) / left
        try:
            async with asyncio.timeout(share):
                return await waiter
        except TimeoutError:  # only this share ran out: the probe's own deadline cancels instead
            return None

    async def _steps(self, conn: _ProbeConnection) -> None:
        self.opening.phase = Phase.MESSAGE
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
        if isinstance(outcome, _StepFailed):
            mismatch = outcome.reason is Reason.MESSAGE_MISMATCH
            self.steps.append(StepResult(index, False, duration, failed_due_to_regex=mismatch))
            raise outcome
        name = step.value_name if step.extract else None
        self.steps.append(StepResult(index, True, duration, value_name=name, value=outcome))
        if self.log is not None:
            self.log("message step done", step=index + 1, seconds=round(duration, 6), value=outcome)


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
    except (ValueError, RecursionError):  # RecursionError: nesting deeper than the parser goes
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
