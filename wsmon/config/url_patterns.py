"""URL patterns: ``[web] probe_allow`` and a module's ``allow`` say where ``/probe`` may connect.

A pattern is a ws:// or wss:// URL in which ``*`` is a wildcard. Scheme, host, port and path are
matched one by one:

- host: ``*`` matches any run of name characters (``*.example.com`` covers ``a.b.example.com``,
  never ``evil.test/.example.com``); the target's host must be a valid host name or IP address;
- port: the scheme's default when the pattern has none, ``*`` for any;
- path: ``*`` stays within one ``/``-separated segment, a whole ``**`` segment spans any number
  of them. The target's path is percent-decoded (``%2e%2e``, ``%2f``) and its ``.``/``..``
  segments resolved first, since that is what the server will see: ``/capture/../x`` is ``/x``;
- query: not matched.

A target with userinfo (``user@host``) never matches: it can make a URL look like it goes
somewhere it does not.
"""

from __future__ import annotations

import fnmatch
import re
from typing import NamedTuple
from urllib.parse import unquote, urlsplit

from wsmon.errors import ConfigError

__all__ = ["check_pattern", "normal_path", "url_matches"]

_DEFAULT_PORTS = {"ws": "80", "wss": "443"}
# What a host can be once IDNA-encoded: names, IPv4 addresses, bracketed IPv6 addresses.
# Anything else (a NUL, a space, a '%') is something a resolver may read differently.
_HOST = re.compile(r"[a-z0-9_.-]+|\[[0-9a-f:.]+\]")
_DECODE_ROUNDS = 4  # %252e is %2e after one round: decode until nothing changes, a few times


class _Parts(NamedTuple):
    scheme: str
    host: str
    port: str
    path: str


def _split(url: str) -> _Parts | None:
    """Scheme, host, port and path of a URL or pattern; None when it has userinfo or no host."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return None
    netloc = parts.netloc
    if "@" in netloc or not netloc:
        return None
    host, sep, port = netloc.rpartition(":") if not netloc.endswith("]") else (netloc, "", "")
    if not sep or "]" in port:
        host, port = netloc, ""
    scheme = parts.scheme.lower()
    return _Parts(scheme, host.lower(), port or _DEFAULT_PORTS.get(scheme, ""), parts.path or "/")


def _idna(host: str) -> str | None:
    try:
        encoded = host.encode("idna").decode("ascii") if not host.isascii() else host
    except UnicodeError:
        return None
    return encoded if _HOST.fullmatch(encoded) else None


def normal_path(path: str) -> list[str]:
    """The segments of ``path`` as a server resolves it: percent-decoded, ``\\`` read as ``/``
    (some servers do), ``.`` and ``..`` segments (also ``..;x``) resolved."""
    for _ in range(_DECODE_ROUNDS):
        decoded = unquote(path)
        if decoded == path:
            break
        path = decoded
    segments: list[str] = []
    for segment in path.replace("\\", "/").split("/")[1:]:
        dots = segment.split(";", 1)[0]
        if dots == "..":
            if segments:
                segments.pop()
        elif dots != ".":
            segments.append(segment)
    return segments


def _segments_match(got: list[str], want: list[str]) -> bool:
    """Whether the path segments ``got`` match the pattern's ``want`` (``**``: any number).

    Row by row over the pattern: ``reachable[i]`` says whether ``got[:i]`` matches the pattern
    so far. Linear in both lengths for each pattern segment, whatever the number of ``**``."""
    reachable = [True] + [False] * len(got)
    for pattern in want:
        if pattern == "**":
            for i in range(1, len(got) + 1):
                reachable[i] = reachable[i] or reachable[i - 1]
        else:
            reachable = [False] + [
                reachable[i] and fnmatch.fnmatchcase(segment, pattern) for i, segment in enumerate(got)
            ]
    return reachable[-1]


def url_matches(target: str, rule: str) -> bool:
    """Whether the URL ``target`` matches the pattern ``rule`` (see the module's docstring)."""
    got, want = _split(target), _split(rule)
    if got is None or want is None or got.scheme != want.scheme:
        return False
    host = _idna(got.host)
    if host is None:
        return False
    return (
        fnmatch.fnmatchcase(host, want.host)
        and (want.port == "*" or fnmatch.fnmatchcase(got.port, want.port))
        and _segments_match(normal_path(got.path), want.path.split("/")[1:])
    )


def check_pattern(rule: str, where: str) -> None:
    """ConfigError unless ``rule`` is a URL pattern that can match something; the message does
    not quote it (a pattern may hold a token)."""
    parts = _split(rule)
    if parts is None or parts.scheme not in _DEFAULT_PORTS:
        raise ConfigError(
            f"{where}: not a URL pattern: write ws://host/path or wss://host/path "
            "(* for any part of a name, ** for any number of path segments; no user@)"
        )
