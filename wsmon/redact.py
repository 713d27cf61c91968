"""Keeping secrets out of everything wsmon shows: URLs, messages, logs.

WebSocket endpoints carry tokens in the path (``wss://host/<token>``), in the query string
(``?apikey=…``) and in userinfo (``user:pass@``). wsmon never shows any of them: a URL is
shown as scheme, host and port, with a path and query values masked (``redact_url``). That is
redaction by structure, and it is the rule: it needs no memory of what was seen before.

The ``secrets`` registry is the last line behind it, for configured secret values that can
turn up in text wsmon does not shape itself (an HTTP library's error, a traceback): ``${VAR}``
values, ``*_file`` contents, basic and bearer credentials, secret headers. URLs that arrive
from the network (``/probe?target=…``) are never registered: they would let any client blind
the logs (``/probe?target=ws://h/failed`` masking every "failed") and grow the registry.
"""

from __future__ import annotations

import re
import threading
from collections import OrderedDict
from collections.abc import Iterable
from urllib.parse import SplitResult, parse_qsl, quote, unquote, urlsplit

__all__ = ["MASK", "SecretRegistry", "redact_text", "redact_url", "secrets", "url_secrets", "userinfo_secrets"]

MASK = "****"
_TOKEN_LIKE_LEN = 12


def redact_url(url: str) -> str:
    """``wss://user:pw@host:443/abc?key=v`` → ``wss://user:****@host:443/****?key=****``."""
    try:
        return _redact_split(urlsplit(url))
    except ValueError:
        return MASK


def _redact_split(parts: SplitResult) -> str:
    """``redact_url`` of a URL already split; ValueError when its port is not a number."""
    host = parts.hostname
    port = parts.port
    if not parts.scheme or host is None or not _printable(host):
        return MASK  # a host with control characters or spaces would garble the log line
    netloc = f"[{host}]" if ":" in host else host
    if port is not None:
        netloc = f"{netloc}:{port}"
    if parts.username is not None:
        user = _name_or_mask(parts.username) + (f":{MASK}" if parts.password is not None else "")
        netloc = f"{user}@{netloc}"
    return SplitResult(parts.scheme, netloc, _masked_path(parts.path), _masked_query(parts.query), "").geturl()


def _masked_path(path: str) -> str:
    return "/" + MASK if path not in ("", "/") else path


def _masked_query(query: str) -> str:
    return "&".join(
        f"{_name_or_mask(quote(key, safe=''))}={MASK}" for key, _ in parse_qsl(query, keep_blank_values=True)
    )


# A URL, or an HTTP request target after its method ("GET /<token> HTTP/1.1", uvicorn's
# "WebSocket /<token>"), in free text: the shapes libraries log URLs in.
_URL_IN_TEXT = re.compile(r"\b[A-Za-z][A-Za-z0-9+.-]*://[^\s\"'<>`:/][^\s\"'<>`]*")
_TARGET_IN_TEXT = re.compile(r"\b(?:GET|HEAD|POST|PUT|DELETE|PATCH|OPTIONS|TRACE|WebSocket) (/[^\s\"'<>`]*)")


def redact_text(text: str) -> str:
    """``text`` with every URL and HTTP request target in it redacted as ``redact_url`` does.

    Redaction by structure for lines wsmon does not write itself (uvicorn's, httpx's): it
    needs no knowledge of which secrets exist, and costs one pass over the text.
    """
    if "/" not in text:
        return text
    text = _URL_IN_TEXT.sub(lambda m: redact_url(m.group()), text)
    return _TARGET_IN_TEXT.sub(_redact_target, text)


def _redact_target(match: re.Match[str]) -> str:
    path, sep, query = match.group(1).partition("?")
    shown = _masked_path(path) + (f"?{_masked_query(query)}" if sep else "")
    return match.group()[: match.start(1) - match.start()] + shown


_SPACE = re.compile(r"\s")


def _printable(text: str) -> bool:
    return text.isprintable() and _SPACE.search(text) is None


def _looks_like_token(text: str) -> bool:
    return len(text) >= _TOKEN_LIKE_LEN


def _name_or_mask(name: str) -> str:
    """A query key or user name is shown ("apikey=****", "alice:****@") unless it looks like a
    token itself, or holds what a log line should not: ``?<token>`` and ``<token>@host`` are
    how some APIs take their keys."""
    return MASK if _looks_like_token(name) or not _printable(name) else name


def userinfo_secrets(url: str) -> list[str]:
    """The password of a URL's userinfo (and a token-like user name), raw and percent-decoded."""
    try:
        parts = urlsplit(url)
        username, password = parts.username, parts.password
    except ValueError:
        return []
    found = [password] if password else []
    if username and _looks_like_token(username):
        found.append(username)
    return sorted({v for s in found for v in (s, unquote(s))}, key=len, reverse=True)


def url_secrets(url: str, *, whole_path: bool = True) -> list[str]:
    """The parts of a URL that redact_url masks, raw and percent-decoded, for scrubbing text:
    the password, token-like user names, path segments and query keys, query values, and
    (``whole_path``) the path with and without its leading slash.

    For configured URLs whose text an HTTP library may quote in its errors (push destinations,
    proxies, ``url_file`` contents), never for URLs from the network.
    """
    try:
        parts = urlsplit(url)
        password = parts.password
    except ValueError:
        return [url]
    found: list[str] = []
    if password:
        found.append(password)
    if parts.username and _looks_like_token(parts.username):
        found.append(parts.username)
    if parts.path not in ("", "/"):
        if whole_path:
            found.extend((parts.path, parts.path.lstrip("/")))
        # A token is usually one long path segment; short ones ("ws", "v1") are words, and
        # masking every occurrence of a word in every log line would hide more than it protects.
        found.extend(seg for seg in parts.path.split("/") if _looks_like_token(seg))
    for key, value in parse_qsl(parts.query, keep_blank_values=True):
        if value:
            found.append(value)
        if _looks_like_token(key):
            found.append(key)
    return sorted({v for s in found for v in (s, unquote(s))}, key=len, reverse=True)


class SecretRegistry:
    """Configured secret values (``${VAR}`` values, secret files, credentials, secret headers),
    scrubbed from every log line, error and traceback as a last line of defence.

    Rules:

    - Values shorter than ``MIN_LEN`` (8) characters are not registered: a port ("8546"), a
      chain ("eth") or a word would mask itself in every log line and protect nothing.
    - Bounded: at most ``MAX_COUNT`` values and ``MAX_BYTES`` characters in all. Beyond that
      the values registered longest ago are forgotten first (a value registered again, as each
      reload of the same config does, counts as new), so the config in force stays covered
      while reloads of changed configs cannot grow the registry without end.
    - Linear: adding a value costs a constant number of dict and set operations, whatever is
      already registered (no re-sorting of values that share a prefix).

    Scrubbing indexes values by their first ``MIN_LEN`` characters and, under each prefix, by
    length: a scrub costs one lookup per character of the text, plus one set lookup per length
    present under a prefix that occurs in the text.
    """

    MIN_LEN = 8
    MAX_COUNT = 100_000
    MAX_BYTES = 8 << 20  # characters, in all values together

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._order: OrderedDict[str, None] = OrderedDict()  # registration order, oldest first
        self._size = 0
        # first MIN_LEN characters → (lengths present, longest first; length → values)
        self._by_prefix: dict[str, tuple[tuple[int, ...], dict[int, set[str]]]] = {}

    def __len__(self) -> int:
        return len(self._order)

    @property
    def size(self) -> int:
        """Characters held, in all values together."""
        return self._size

    def add(self, values: Iterable[str]) -> None:
        with self._lock:  # writers take turns; scrub reads without the lock (see _insert)
            for value in values:
                if len(value) < self.MIN_LEN or len(value) > self.MAX_BYTES:
                    continue
                if value in self._order:
                    self._order.move_to_end(value)
                    continue
                self._insert(value)
                while len(self._order) > self.MAX_COUNT or self._size > self.MAX_BYTES:
                    self._remove(self._order.popitem(last=False)[0])

    def add_url(self, url: str) -> None:
        self.add(url_secrets(url))

    def _insert(self, value: str) -> None:
        # Readers only test membership in the sets and read the lengths tuple, which is
        # replaced whole: a scrub running beside an add sees the value or not, never a tear.
        self._order[value] = None
        self._size += len(value)
        prefix, length = value[: self.MIN_LEN], len(value)
        entry = self._by_prefix.get(prefix)
        if entry is None:
            self._by_prefix[prefix] = ((length,), {length: {value}})
            return
        lengths, by_length = entry
        if length in by_length:
            by_length[length].add(value)
        else:
            by_length[length] = {value}
            self._by_prefix[prefix] = (tuple(sorted((*lengths, length), reverse=True)), by_length)

    def _remove(self, value: str) -> None:
        self._size -= len(value)
        prefix, length = value[: self.MIN_LEN], len(value)
        lengths, by_length = self._by_prefix[prefix]
        same = by_length[length]
        same.discard(value)
        if same:
            return
        rest = tuple(n for n in lengths if n != length)
        if rest:
            self._by_prefix[prefix] = (rest, by_length)
            del by_length[length]
        else:
            del self._by_prefix[prefix]

    def scrub(self, text: str) -> str:
        """``text`` with every registered secret in it masked (leftmost, longest first)."""
        index = self._by_prefix
        if not index:
            return text
        width = self.MIN_LEN
        pieces: list[str] = []
        start = i = 0
        last = len(text) - width
        while i <= last:
            entry = index.get(text[i : i + width])
            if entry is not None:
                lengths, by_length = entry
                found = next((n for n in lengths if text[i : i + n] in by_length.get(n, ())), 0)
                if found:
                    pieces.append(text[start:i])
                    pieces.append(MASK)
                    i = start = i + found
                    continue
            i += 1
        if not pieces:
            return text
        pieces.append(text[start:])
        return "".join(pieces)


# The process-wide registry: config loading registers, logging and errors scrub.
secrets = SecretRegistry()
