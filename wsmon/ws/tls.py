"""TLS client contexts for probes, built once per set of options.

Building an SSLContext and loading the system CA store costs milliseconds; a probe costs
less than that, so contexts are cached by their (immutable) options.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from datetime import UTC
from functools import lru_cache

__all__ = ["TLSOptions", "certificate_expiry", "client_context"]


@dataclass(frozen=True, slots=True)
class TLSOptions:
    ca_file: str | None = None
    cert_file: str | None = None
    key_file: str | None = None
    server_name: str | None = None
    insecure_skip_verify: bool = False


@lru_cache(maxsize=64)
def client_context(options: TLSOptions) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=options.ca_file)
    if options.insecure_skip_verify:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    if options.cert_file:
        context.load_cert_chain(options.cert_file, options.key_file)
    # WebSocket runs over HTTP/1.1; offering h2 could make a server pick a protocol we can't use.
    context.set_alpn_protocols(["http/1.1"])
    return context


def certificate_expiry(ssl_object: ssl.SSLObject | ssl.SSLSocket | None) -> float | None:
    """Unix time when the server's certificate expires (verified or not)."""
    if ssl_object is None:
        return None
    der = ssl_object.getpeercert(binary_form=True)
    if not der:
        return None
    from cryptography import x509  # imported late: only TLS probes need it

    return x509.load_der_x509_certificate(der).not_valid_after_utc.replace(tzinfo=UTC).timestamp()
