"""Parsing a probe target URL (``ws://`` / ``wss://``) into what the probe needs.

``basic_credentials`` is the one place ``user:password`` becomes Basic credentials: for a
target URL's userinfo, a proxy URL's (``wsmon.ws.proxy``) and ``basic_auth`` tables
(``wsmon.config.credentials``).
"""

from __future__ import annotations

import base64
import ipaddress
from dataclasses import dataclass
from functools import lru_cache
from urllib.parse import SplitResult, unquote, urlsplit

from wsmon.errors import TargetError
from wsmon.redact import redact_url, secrets

__all__ = ["TargetURL", "basic_credentials", "parse_target", "userinfo_credentials"]

_DEFAULT_PORTS = {"ws": 80, "wss": 443}


@dataclass(frozen=True, slots=True)
class TargetURL:
    secure: bool
    host: str  # without brackets for IPv6
    port: int
    resource: str  # path and query, as sent in the request line
    host_header: str
    is_ip: bool
    basic_auth: str | None  # base64 "user:password" from the URL's userinfo (basic_credentials)
    redacted: str


def basic_credentials(username: str, password: str) -> str:
    """What follows ``Basic`` in an ``Authorization`` or ``Proxy-Authorization`` header:
    base64 of ``username:password``, registered as a secret."""
    credentials = base64.b64encode(f"{username}:{password}".encode()).decode()
    secrets.add([credentials])
    return credentials


def userinfo_credentials(parts: SplitResult) -> str | None:
    """``basic_credentials`` of a URL's percent-decoded userinfo; None when it has none."""
    if parts.username is None:
        return None
    return basic_credentials(unquote(parts.username), unquote(parts.password or ""))


@lru_cache(maxsize=4096)
def parse_target(url: str) -> TargetURL:
    """Raise TargetError with a message that never quotes the URL (it may hold a token).

    Cached: a monitor probes the same URLs over and over, and parsing plus redacting one costs
    as much as a tenth of a loopback probe.
    """
    try:
        parts = urlsplit(url.strip())
        host = parts.hostname
        port = parts.port
    except ValueError as exc:
        # urllib's messages quote the offending part (a port with a password before it, say).
        why = "invalid IPv6 address" if "IPv6" in str(exc) else "invalid port"
        raise TargetError(f"unparsable target URL ({why})") from None
    scheme = parts.scheme.lower()
    if scheme not in _DEFAULT_PORTS:
        shown = f"{scheme}://" if scheme else "no scheme"
        raise TargetError(f"unsupported scheme {shown}: the target must be a ws:// or wss:// URL")
    if not host:
        raise TargetError("the target URL has no host")
    secrets.add_url(url)
    default_port = _DEFAULT_PORTS[scheme]
    port = default_port if port is None else port
    try:
        is_ip = bool(ipaddress.ip_address(host))
    except ValueError:
        is_ip = False
    bracketed = f"[{host}]" if ":" in host else host
    host_header = bracketed if port == default_port else f"{bracketed}:{port}"
    resource = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    return TargetURL(
        secure=scheme == "wss",
        host=host,
        port=port,
        resource=resource,
        host_header=host_header,
        is_ip=is_ip,
        basic_auth=userinfo_credentials(parts),
        redacted=redact_url(url),
    )
