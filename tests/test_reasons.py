"""Failure classification (wsmon.probe.reasons)."""

from __future__ import annotations

import errno
import socket
import ssl

import pytest

from wsmon.probe.reasons import Phase, Reason, classify


def test_the_spec_reasons_exist() -> None:
    spec = {
        "dns",
        "refused",
        "timeout",
        "tls",
        "http_status",
        "handshake",
        "closed",
        "ping_timeout",
        "message_timeout",
        "message_mismatch",
        "network",
        "invalid_target",
    }
    assert spec <= {str(r) for r in Reason}


def test_reasons_are_label_safe() -> None:
    for reason in Reason:
        assert str(reason) == reason.value
        assert reason.value.replace("_", "").isalpha() and reason.value.islower()


TIMEOUT_BY_PHASE = {
    Phase.RESOLVE: Reason.TIMEOUT,
    Phase.CONNECT: Reason.TIMEOUT,
    Phase.TLS: Reason.TIMEOUT,
    Phase.UPGRADE: Reason.TIMEOUT,
    Phase.PING: Reason.PING_TIMEOUT,
    Phase.MESSAGE: Reason.MESSAGE_TIMEOUT,
    Phase.CLOSE: Reason.CLOSE_TIMEOUT,
}


@pytest.mark.parametrize(("phase", "reason"), TIMEOUT_BY_PHASE.items())
@pytest.mark.parametrize("exc", [TimeoutError(), TimeoutError(errno.ETIMEDOUT, "timed out")])
def test_timeouts_by_phase(exc: BaseException, phase: Phase, reason: Reason) -> None:
    assert classify(exc, phase) is reason


def test_every_phase_has_a_timeout_reason() -> None:
    assert set(TIMEOUT_BY_PHASE) == set(Phase)


def _cert_error() -> ssl.SSLCertVerificationError:
    exc = ssl.SSLCertVerificationError(1, "certificate verify failed")
    exc.verify_message = "self-signed certificate"
    return exc


@pytest.mark.parametrize(
    ("exc", "phase", "reason"),
    [
        (socket.gaierror(socket.EAI_NONAME, "Name or service not known"), Phase.RESOLVE, Reason.DNS),
        (socket.gaierror(socket.EAI_AGAIN, "Temporary failure"), Phase.CONNECT, Reason.DNS),
        (OSError("anything while resolving"), Phase.RESOLVE, Reason.DNS),
        (ConnectionRefusedError(errno.ECONNREFUSED, "Connection refused"), Phase.CONNECT, Reason.REFUSED),
        (OSError(errno.ECONNREFUSED, "Connect call failed"), Phase.CONNECT, Reason.REFUSED),
        (ConnectionRefusedError(), Phase.UPGRADE, Reason.REFUSED),
        (OSError(errno.ENETUNREACH, "Network is unreachable"), Phase.CONNECT, Reason.NETWORK),
        (OSError(errno.EHOSTUNREACH, "No route to host"), Phase.CONNECT, Reason.NETWORK),
        (OSError("no errno"), Phase.CONNECT, Reason.NETWORK),
        (_cert_error(), Phase.TLS, Reason.TLS),
        (ssl.SSLError(1, "wrong version number"), Phase.TLS, Reason.TLS),
        (ssl.SSLEOFError(8, "EOF occurred in violation of protocol"), Phase.TLS, Reason.TLS),
        (ssl.CertificateError("hostname mismatch"), Phase.TLS, Reason.TLS),
        (ssl.SSLError(1, "bad record mac"), Phase.PING, Reason.TLS),
        # A peer hanging up: during the TLS handshake it is a TLS failure, later a close.
        (ConnectionResetError(errno.ECONNRESET, "Connection reset by peer"), Phase.TLS, Reason.TLS),
        (EOFError(), Phase.TLS, Reason.TLS),
        (ConnectionResetError(errno.ECONNRESET, "Connection reset by peer"), Phase.UPGRADE, Reason.CLOSED),
        (ConnectionAbortedError(), Phase.PING, Reason.CLOSED),
        (BrokenPipeError(errno.EPIPE, "Broken pipe"), Phase.MESSAGE, Reason.CLOSED),
        (OSError(errno.EPIPE, "Broken pipe"), Phase.CLOSE, Reason.CLOSED),
        (OSError(errno.ECONNRESET, "reset"), Phase.CONNECT, Reason.CLOSED),
        (EOFError(), Phase.UPGRADE, Reason.CLOSED),
    ],
)
def test_classify(exc: BaseException, phase: Phase, reason: Reason) -> None:
    assert classify(exc, phase) is reason
