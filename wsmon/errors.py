"""Every exception class of wsmon, in one place.

Errors a user acts on carry one line saying what is wrong and what to do; none quotes a secret.

    ValueError
    ├── ConfigError         the configuration (file, flag, API body or query parameter) is not valid
    └── TargetError         a probe target URL is not one wsmon can probe
    KeyError
    └── UnknownTarget       no target of that name (the targets API answers 404)
    OSError
    └── ProxyError          the HTTP CONNECT proxy refused or garbled the tunnel
    Exception
    ├── HandshakeError      the server answered, but not with a valid WebSocket upgrade (``status``)
    ├── ProtocolError       the server broke the framing rules
    ├── ConnectionClosed    the connection ended (close frame, EOF, reset) while something was awaited
    ├── Failure             a failure wsmon recognised itself (a message mismatch), with its reason
    └── TooManyFailures     a client failed to log in too often (``retry_after`` seconds to wait)

The WebSocket client (``wsmon.ws``) raises the first group of the last; ``wsmon.probe.failures``
turns any of them into a probe's failure reason.
"""

from __future__ import annotations

from enum import StrEnum

__all__ = [
    "ConfigError",
    "ConnectionClosed",
    "Failure",
    "HandshakeError",
    "ProtocolError",
    "ProxyError",
    "TargetError",
    "TooManyFailures",
    "UnknownTarget",
]


class ConfigError(ValueError):
    """The configuration (file, flag or query parameter) is not valid."""


class TargetError(ValueError):
    """A probe target URL is not one wsmon can probe."""


class UnknownTarget(KeyError):
    """No target of that name."""


class ProxyError(OSError):
    """The proxy refused or garbled the CONNECT."""


class HandshakeError(Exception):
    """The server answered, but not with a valid WebSocket upgrade."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class ProtocolError(Exception):
    """The server broke the framing rules; the connection cannot go on.

    ``code`` is the close code the connection is failed with (RFC 6455 §7.4.1): 1002 for a
    framing error, 1007 for a text message that is not UTF-8.
    """

    def __init__(self, message: str, code: int = 1002) -> None:
        super().__init__(message)
        self.code = code


class ConnectionClosed(Exception):
    """The connection ended (peer close frame, EOF or reset) while something was awaited."""


class Failure(Exception):
    """A failure wsmon itself recognised (a message mismatch, a lost pong), with its reason
    (a ``wsmon.probe.reasons.Reason``: this module sits below the probe and names no type of it)."""

    def __init__(self, reason: StrEnum, message: str) -> None:
        super().__init__(message)
        self.reason = reason


class TooManyFailures(Exception):
    """This client failed to log in too often; it must wait ``retry_after`` seconds."""

    def __init__(self, retry_after: float) -> None:
        super().__init__("too many failed logins")
        self.retry_after = retry_after
