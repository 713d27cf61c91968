"""The fixed set of reasons a probe fails for, and how an exception maps to one.

Reasons are label values (``probe_websocket_failure_info{reason=…}``), so the set is small
and closed: a new failure mode gets a reason here, with a test, or maps to an existing one.
"""

from __future__ import annotations

import errno
import socket
import ssl
from enum import StrEnum

__all__ = ["Phase", "Reason", "classify"]


class Reason(StrEnum):
    INVALID_TARGET = "invalid_target"
    DNS = "dns"
    REFUSED = "refused"
    NETWORK = "network"
    TIMEOUT = "timeout"  # before the WebSocket was open (connect, TLS, upgrade)
    TLS = "tls"
    PROXY = "proxy"
    HTTP_STATUS = "http_status"
    HANDSHAKE = "handshake"
    CLOSED = "closed"  # the peer closed or reset the connection when it should not have
    PROTOCOL = "protocol"  # the peer broke the WebSocket framing rules
    PING_TIMEOUT = "ping_timeout"
    MESSAGE_TIMEOUT = "message_timeout"
    MESSAGE_MISMATCH = "message_mismatch"
    MESSAGE_TOO_LARGE = "message_too_large"
    CLOSE_TIMEOUT = "close_timeout"
    INTERNAL = "internal"  # a bug in wsmon, logged with its details


class Phase(StrEnum):
    RESOLVE = "resolve"
    CONNECT = "connect"
    TLS = "tls"
    UPGRADE = "upgrade"
    PING = "ping"
    MESSAGE = "message"
    CLOSE = "close"


# What running out of time means depends on what the probe was waiting for.
_TIMEOUT_BY_PHASE = {
    Phase.RESOLVE: Reason.TIMEOUT,
    Phase.CONNECT: Reason.TIMEOUT,
    Phase.TLS: Reason.TIMEOUT,
    Phase.UPGRADE: Reason.TIMEOUT,
    Phase.PING: Reason.PING_TIMEOUT,
    Phase.MESSAGE: Reason.MESSAGE_TIMEOUT,
    Phase.CLOSE: Reason.CLOSE_TIMEOUT,
}

_REFUSED = {errno.ECONNREFUSED}
_CLOSED = {errno.ECONNRESET, errno.EPIPE, errno.ECONNABORTED}


def classify(exc: BaseException, phase: Phase) -> Reason:
    """Map what went wrong, and where, to a Reason."""
    if isinstance(exc, TimeoutError):
        return _TIMEOUT_BY_PHASE[phase]
    if isinstance(exc, socket.gaierror) or phase is Phase.RESOLVE:
        return Reason.DNS
    if isinstance(exc, ssl.SSLError | ssl.CertificateError):
        return Reason.TLS
    if isinstance(exc, ConnectionRefusedError) or getattr(exc, "errno", None) in _REFUSED:
        return Reason.REFUSED
    if isinstance(exc, ConnectionError | EOFError) or getattr(exc, "errno", None) in _CLOSED:
        # A TLS handshake cut short by the peer is a TLS failure as far as a user can tell.
        return Reason.TLS if phase is Phase.TLS else Reason.CLOSED
    return Reason.NETWORK
