"""Parsing a probe target URL (``ws://`` / ``wss://``) into what the probe needs.

``parse_target`` is the one door every target URL passes (``/probe``, the config file, the
targets API, ``wsmon check``, persistent connections), so its checks hold everywhere: no
control characters or spaces anywhere in the URL, and a host that is a valid DNS name (after
IDNA encoding), an IPv4 address or a bracketed IPv6 address. The host it returns is the
normalised one (lowercase, ASCII, no trailing dot) that is both matched and connected to:
``TargetURL.canonical`` is what an allowlist should match.

``basic_credentials`` is the one place ``user:password`` becomes Basic credentials: for a
target URL's userinfo, a proxy URL's (``wsmon.ws.proxy``) and ``basic_auth`` tables
(``wsmon.config.credentials``).
"""

from __future__ import annotations

import base64
import ipaddress
import re
from dataclasses import dataclass, field
from functools import lru_cache
from urllib.parse import SplitResult, unquote, urlsplit

import idna

from wsmon.errors import TargetError
from wsmon.redact import redact_url, secrets

__all__ = ["TargetURL", "basic_credentials", "normalise_host", "parse_target", "userinfo_credentials"]

_DEFAULT_PORTS = {"ws": 80, "wss": 443}
# Letters, digits and hyphens (RFC 1123), and the underscore that container service names
# (docker compose's "my_node") carry and resolvers accept; no hyphen at either end.
_LABEL = re.compile(r"[a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9_])?")
_NUMERIC_LABEL = re.compile(r"[0-9]+|0x[0-9a-f]*")
_MAX_NAME = 253
_SCHEME_SHOWN = re.compile(r"[a-z][a-z0-9+.-]{0,15}")

_HOST_RULE = (
    "use a DNS name (letters, digits and hyphens, labels of 1 to 63 characters, 253 in all), "
    "an IPv4 address or a bracketed IPv6 address"
)


@dataclass(frozen=True, slots=True)
class TargetURL:
    secure: bool
    host: str  # normalised (normalise_host): lowercase ASCII, IPv6 without brackets
    port: int
    resource: str  # path and query, as sent in the request line
    host_header: str
    is_ip: bool
    basic_auth: str | None  # base64 "user:password" from the URL's userinfo
    url: str = field(repr=False)  # as given (stripped): what ``redacted`` is made from

    @property
    def redacted(self) -> str:
        """The URL as shown (``redact_url``); made when asked for (and cached), since
        validating a config of 20,000 targets never asks."""
        return _redacted(self.url)

    @property
    def canonical(self) -> str:
        """``scheme://host:port/path?query``: the normalised host, the port always, no userinfo.

        What is connected to, written out; an allowlist matched against this string cannot be
        fooled by case, IDNA forms, a trailing dot or userinfo into allowing another host.
        """
        bracketed = f"[{self.host}]" if ":" in self.host else self.host
        return f"{'wss' if self.secure else 'ws'}://{bracketed}:{self.port}{self.resource}"


def _encode_basic(username: str, password: str) -> str:
    return base64.b64encode(f"{username}:{password}".encode()).decode()


def basic_credentials(username: str, password: str) -> str:
    """What follows ``Basic`` in an ``Authorization`` or ``Proxy-Authorization`` header:
    base64 of ``username:password``, registered as a secret (for configured credentials)."""
    credentials = _encode_basic(username, password)
    secrets.add([credentials, password])
    return credentials


def userinfo_credentials(parts: SplitResult) -> str | None:
    """``basic_credentials`` of a URL's percent-decoded userinfo; None when it has none."""
    if parts.username is None:
        return None
    return basic_credentials(unquote(parts.username), unquote(parts.password or ""))


def _has_control_or_space(text: str) -> bool:
    # isprintable() is False for C0/C1 controls, DEL and every separator but the ASCII space.
    return not text.isprintable() or " " in text


def normalise_host(host: str, bracketed: bool = False) -> tuple[str, bool]:
    """(normalised host, is an IP address) of a URL's host, brackets removed; TargetError unless
    it is an IP address or a valid DNS name once IDNA-encoded (``bücher.example`` →
    ``xn--bcher-kva.example``). The message never quotes the host."""
    if bracketed or ":" in host:  # only a bracketed IPv6 literal can hold a colon
        if "%" in host:
            raise TargetError("IPv6 zone identifiers (%25…) are not supported in target URLs; use an address or name")
        try:
            return str(ipaddress.IPv6Address(host)), True
        except ValueError:
            raise TargetError(f"the target URL's host is not a valid IPv6 address; {_HOST_RULE}") from None
    if _has_control_or_space(host):
        raise TargetError("the target URL's host holds a control character or a space; remove it")
    if not host.isascii():
        try:
            host = idna.encode(host, uts46=True, transitional=False).decode("ascii")
        except idna.IDNAError:
            raise TargetError(
                f"the target URL's host is not a valid internationalised name (IDNA); {_HOST_RULE}"
            ) from None
    name = host.lower().removesuffix(".")  # one trailing dot (a rooted name) is the same host
    labels = name.split(".")
    if _NUMERIC_LABEL.fullmatch(labels[-1]):
        # Resolvers read "127.1", "0x7f.0.0.1" and "2130706433" as IPv4 addresses: only the
        # dotted-quad form is accepted, so that what is matched is what is connected to.
        try:
            return str(ipaddress.IPv4Address(name)), True
        except ValueError:
            raise TargetError(
                "the target URL's host looks like an IPv4 address but is not one; "
                "write four numbers 0-255, e.g. 192.0.2.1"
            ) from None
    if not name or len(name) > _MAX_NAME or not all(_LABEL.fullmatch(label) for label in labels):
        raise TargetError(f"the target URL's host is not a valid host name; {_HOST_RULE}")
    return name, False


def _unsupported_scheme(url: str, scheme: str) -> TargetError:
    # Show what was typed as a scheme only when it is one ("http://"): in "alice:s3cret@host",
    # urllib's "scheme" is a user name, and after it comes a password.
    written = scheme.lower()
    if not scheme:
        what = "unsupported scheme no scheme"
    elif url[: len(scheme) + 3].lower() == f"{written}://" and _SCHEME_SHOWN.fullmatch(written):
        what = f"unsupported scheme {written}://"
    else:
        what = "unsupported scheme"
    return TargetError(f"{what}: the target must be a ws:// or wss:// URL")


_redacted = lru_cache(maxsize=4096)(redact_url)


@lru_cache(maxsize=4096)
def parse_target(url: str) -> TargetURL:
    """Raise TargetError with a message that never quotes the URL (it may hold a token).

    Cached: a monitor probes the same URLs over and over, and parsing plus redacting one costs
    as much as a tenth of a loopback probe. Nothing of the URL is registered as a secret: URLs
    come from the network too (``/probe``), and redaction by structure hides them wherever
    they are shown.
    """
    url = url.strip()
    if _has_control_or_space(url):
        raise TargetError("the target URL holds a control character or a space; percent-encode it (%20) or remove it")
    try:
        parts = urlsplit(url)
        host = parts.hostname
        port = parts.port
    except ValueError as exc:
        # urllib's messages quote the offending part (a port with a password before it, say).
        why = "invalid IPv6 address" if "IPv6" in str(exc) else "invalid port"
        raise TargetError(f"unparsable target URL ({why})") from None
    scheme = parts.scheme.lower()
    if scheme not in _DEFAULT_PORTS:
        raise _unsupported_scheme(url, parts.scheme)
    if not host:
        raise TargetError("the target URL has no host")
    if "\\" in parts.netloc:
        # Browsers read "ws://a\@b/" as host "a", urllib as host "b": refuse what parsers disagree on.
        raise TargetError("the target URL holds a backslash before its path; percent-encode it (%5C)")
    host_and_port = parts.netloc.rpartition("@")[2]
    port_text = host_and_port.rpartition("]")[2].partition(":")[2]
    if port_text and not (port_text.isascii() and port_text.isdigit()):
        raise TargetError("unparsable target URL (invalid port)")
    host, is_ip = normalise_host(host, bracketed=host_and_port.startswith("["))
    default_port = _DEFAULT_PORTS[scheme]
    port = default_port if port is None else port
    bracketed = f"[{host}]" if ":" in host else host
    host_header = bracketed if port == default_port else f"{bracketed}:{port}"
    resource = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    basic = None
    if parts.username is not None:
        basic = _encode_basic(unquote(parts.username), unquote(parts.password or ""))
    return TargetURL(
        secure=scheme == "wss",
        host=host,
        port=port,
        resource=resource,
        host_header=host_header,
        is_ip=is_ip,
        basic_auth=basic,
        url=url,
    )
