"""What went wrong, as a Reason and one line a user can read, from an exception and a phase.

Shared by one-off probes and persistent connections, so both report a failure the same way.
"""

from __future__ import annotations

import ssl

from wsmon.errors import ConnectionClosed, Failure, HandshakeError, ProtocolError, ProxyError
from wsmon.probe.reasons import Phase, Reason, classify
from wsmon.redact import secrets

__all__ = ["describe", "failure_of"]


def describe(exc: BaseException) -> str:
    """An exception as one line a user can read, e.g. ``[Errno 111] Connection refused``."""
    if isinstance(exc, ssl.SSLCertVerificationError):
        return f"certificate verify failed: {exc.verify_message}"
    text = str(exc) or type(exc).__name__
    return text.splitlines()[0]


def failure_of(exc: Exception, phase: Phase, target: str) -> tuple[Reason, str]:
    """(reason, message without secrets) for an exception raised during ``phase``."""
    reason: Reason
    if isinstance(exc, TimeoutError):
        reason, message = classify(exc, phase), f"timed out during {phase}"
    elif isinstance(exc, HandshakeError):
        reason = Reason.HTTP_STATUS if exc.status not in (None, 101) else Reason.HANDSHAKE
        message = str(exc)
    elif isinstance(exc, Failure):
        reason, message = Reason(exc.reason), str(exc)
    elif isinstance(exc, ConnectionClosed):
        reason, message = Reason.CLOSED, f"{exc} during {phase}"
    elif isinstance(exc, ProtocolError):
        reason, message = Reason.PROTOCOL, f"protocol error during {phase}: {exc}"
    elif isinstance(exc, ProxyError):
        reason, message = Reason.PROXY, str(exc)
    elif isinstance(exc, OSError | EOFError | ssl.CertificateError):
        reason, message = classify(exc, phase), f"{phase} failed: {describe(exc)}"
    elif isinstance(exc, UnicodeError):  # the IDNA codec refuses the host (empty or over-long labels)
        reason, message = Reason.INVALID_TARGET, "the target's host name is not a valid DNS name"
    else:  # a bug in wsmon: report it, never let it take the monitor down
        reason, message = Reason.INTERNAL, f"internal error during {phase}: {describe(exc)}"
        import structlog  # here, not at the top: probes import this module, and never log otherwise

        structlog.get_logger("wsmon").error("internal error", target=target, error=secrets.scrub(repr(exc)))
    return reason, secrets.scrub(message)
