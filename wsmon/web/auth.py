"""Who is asking: HTTP Basic (bcrypt-hashed passwords) or a bearer token, with a role.

Failed logins are rate-limited per client address and logged with the user name they tried,
never with what they sent as a password or token.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import hmac
import time
from collections import deque
from dataclasses import dataclass

import bcrypt
import structlog

from wsmon.config.web import Role, WebConfig
from wsmon.errors import TooManyFailures

__all__ = ["Authenticator", "Identity", "hash_password"]

log = structlog.get_logger("wsmon.web")

MAX_FAILURES = 5  # per client address…
FAILURE_WINDOW = 60.0  # …within this many seconds; then it waits out the window
_BCRYPT_MAX = 72  # bytes of password bcrypt looks at
_VERIFIED_CACHE = 256  # bcrypt costs ~0.1 s a check: remember credentials that passed


@dataclass(frozen=True, slots=True)
class Identity:
    name: str
    role: Role
    by_token: bool  # bearer tokens are not sent by browsers on their own: no CSRF risk


class Authenticator:
    def __init__(self, web: WebConfig) -> None:
        self._users = {u.name: u for u in web.users}
        self._tokens = web.tokens
        self._failures: dict[str, deque[float]] = {}
        self._verified: dict[bytes, Identity] = {}
        self._now = time.monotonic

    async def identify(self, authorization: str | None, client: str) -> Identity | None:
        """The identity the Authorization header proves, None without credentials.

        Raises TooManyFailures for a client over its budget, before checking anything.
        """
        if not authorization:
            return None
        failures = self._failures.get(client)
        now = self._now()
        if failures:
            while failures and now - failures[0] > FAILURE_WINDOW:
                failures.popleft()
            if len(failures) >= MAX_FAILURES:
                raise TooManyFailures(FAILURE_WINDOW - (now - failures[0]))
        scheme, _, credentials = authorization.partition(" ")
        identity, tried = None, "?"
        if scheme.lower() == "basic":
            identity, tried = await self._basic(credentials.strip())
        elif scheme.lower() == "bearer":
            identity, tried = self._bearer(credentials.strip()), "(token)"
        if identity is None:
            self._failures.setdefault(client, deque()).append(now)
            log.warning("login failed", user=tried, client=client)
        return identity

    async def _basic(self, credentials: str) -> tuple[Identity | None, str]:
        try:
            name, sep, password = base64.b64decode(credentials, validate=True).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            return None, "?"
        user = self._users.get(name)
        if not sep or user is None:
            # An unknown name is logged as such: it may be a password typed in the wrong field.
            return None, "(unknown user)"
        key = hashlib.sha256(f"{name}\0{password}".encode()).digest()
        cached = self._verified.get(key)
        if cached is not None:
            return cached, name
        if len(password.encode()) > _BCRYPT_MAX:
            return None, name  # no bcrypt hash can match it (bcrypt 5 refuses to try)
        # bcrypt takes ~0.2 s on purpose: in a thread, or every ping would wait for it.
        if not await asyncio.to_thread(bcrypt.checkpw, password.encode(), user.password_hash):
            return None, name
        identity = Identity(name, user.role, by_token=False)
        if len(self._verified) >= _VERIFIED_CACHE:
            self._verified.clear()
        self._verified[key] = identity
        return identity, name

    def _bearer(self, token: str) -> Identity | None:
        for entry in self._tokens:
            if hmac.compare_digest(entry.token.encode(), token.encode()):
                return Identity(entry.name, entry.role, by_token=True)
        return None


def hash_password(password: str) -> str:
    """A bcrypt hash for ``[web.users.<name>] password_hash``; ValueError past 72 bytes."""
    if len(password.encode()) > _BCRYPT_MAX:
        raise ValueError(f"bcrypt uses at most {_BCRYPT_MAX} bytes of a password: choose a shorter one")
    return bcrypt.hashpw(password.encode(), bcrypt.gensalt()).decode()
