"""Keeping secrets out of everything wsmon shows: URLs, messages, logs.

WebSocket endpoints carry tokens in the path (``wss://host/<token>``), in the query string
(``?apikey=…``) and in userinfo (``user:pass@``). wsmon never shows any of them: a URL is
shown as scheme, host and port, with a path and query values masked.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from urllib.parse import SplitResult, parse_qsl, quote, unquote, urlsplit

__all__ = ["MASK", "SecretRegistry", "redact_url", "secrets", "url_secrets"]

MASK = "****"
_TOKEN_LIKE_LEN = 12


def redact_url(url: str) -> str:
    """``wss://user:pw@host:443/abc?key=v`` → ``wss://user:****@host:443/****?key=****``."""
    try:
        parts = urlsplit(url)
        host = parts.hostname
        port = parts.port
    except ValueError:
        return MASK
    if not parts.scheme or host is None:
        return MASK
    netloc = f"[{host}]" if ":" in host else host
    if port is not None:
        netloc = f"{netloc}:{port}"
    if parts.username is not None:
        user = _name_or_mask(parts.username) + (f":{MASK}" if parts.password is not None else "")
        netloc = f"{user}@{netloc}"
    path = "/" + MASK if parts.path not in ("", "/") else parts.path
    query = "&".join(
        f"{_name_or_mask(quote(key, safe=''))}={MASK}" for key, _ in parse_qsl(parts.query, keep_blank_values=True)
    )
    return SplitResult(parts.scheme, netloc, path, query, "").geturl()


def _looks_like_token(text: str) -> bool:
    return len(text) >= _TOKEN_LIKE_LEN


def _name_or_mask(name: str) -> str:
    """A query key or user name is shown ("apikey=****", "alice:****@") unless it looks like a
    token itself: ``?<token>`` and ``<token>@host`` are how some APIs take their keys."""
    return MASK if _looks_like_token(name) else name


def url_secrets(url: str) -> list[str]:
    """The parts of a URL that redact_url masks, raw and percent-decoded, for scrubbing text."""
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
    """Every secret wsmon has seen (URL parts, passwords, bearer tokens), for last-line scrubbing.

    Redacting at the source is the rule; this catches what slips through (an exception
    message quoting a URL, a library's log line). Secrets shorter than 4 characters are not
    scrubbed: masking every "a" in a log line would hide everything and protect nothing.

    Built for tens of thousands of secrets (a token per target): secrets are indexed by their
    first four characters, so a scrub costs one lookup per character of the text, whatever the
    number of secrets (scanning for each secret in turn took 9 ms a log line at 30,000).
    """

    _MIN_LEN = 4

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._by_prefix: dict[str, tuple[str, ...]] = {}  # first characters → secrets, longest first

    def add(self, values: Iterable[str]) -> None:
        new = {v for v in values if len(v) >= self._MIN_LEN}
        index = self._by_prefix
        new = {v for v in new if v not in index.get(v[: self._MIN_LEN], ())}
        if not new:
            return
        with self._lock:  # writers take turns; readers see each entry swapped whole
            for value in new:
                prefix = value[: self._MIN_LEN]
                index[prefix] = tuple(sorted({*index.get(prefix, ()), value}, key=len, reverse=True))

    def add_url(self, url: str) -> None:
        self.add(url_secrets(url))

    def scrub(self, text: str) -> str:
        """``text`` with every registered secret in it masked (leftmost, longest first)."""
        index = self._by_prefix
        if not index:
            return text
        pieces: list[str] = []
        start = i = 0
        last = len(text) - self._MIN_LEN
        while i <= last:
            found = index.get(text[i : i + self._MIN_LEN])
            if found:
                secret = next((s for s in found if text.startswith(s, i)), None)
                if secret is not None:
                    pieces.append(text[start:i])
                    pieces.append(MASK)
                    i = start = i + len(secret)
                    continue
            i += 1
        if not pieces:
            return text
        pieces.append(text[start:])
        return "".join(pieces)


# The process-wide registry: config loading and probes register, logging and errors scrub.
secrets = SecretRegistry()
