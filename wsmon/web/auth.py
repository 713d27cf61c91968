"""Who is asking: HTTP Basic or the login form (bcrypt-hashed passwords), or a bearer token,
with a role.

Failed logins are rate-limited per client address and per user name, and logged with the user
name they tried, never with what they sent as a password or token. An attempt is counted
before it is checked, so that parallel guesses cannot all slip through while bcrypt runs; an
unknown user costs the same bcrypt time as a known one, so that timing does not tell which
names exist.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
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
MAX_USER_FAILURES = 10  # …and per user name, from any address…
FAILURE_WINDOW = 60.0  # …within this many seconds; then it waits out the window
_BCRYPT_MAX = 72  # bytes of password bcrypt looks at
_VERIFIED_CACHE = 256  # bcrypt costs ~0.1 s a check: remember credentials that passed
_TRACKED = 10_000  # addresses and names with recent failures kept in memory, at most
_NAME_KEY = 128  # characters of a tried user name that identify it for the limit
_DEFAULT_COST = 12  # bcrypt's own default, for the dummy check when no user is configured


@dataclass(frozen=True, slots=True)
class Identity:
    name: str
    role: Role
    by_token: bool  # bearer tokens are not sent by browsers on their own: no CSRF risk


def _dummy_hash(hashes: list[bytes]) -> bytes:
    """A well-formed bcrypt hash of nothing, as costly to check as the users' slowest.

    bcrypt spends its time on the salt and cost, whatever the stored digest: checking a
    password for an unknown user against this one takes as long as for a real user."""
    costs = [int(h[4:6]) for h in hashes if h[4:6].isdigit()]
    return b"$2b$%02d$" % max(costs, default=_DEFAULT_COST) + b"." * 53


class Authenticator:
    def __init__(self, web: WebConfig) -> None:
        self.users = {u.name: u for u in web.users}
        self._tokens = web.tokens
        self._failures: dict[str, deque[float]] = {}  # "addr <ip>" / "user <name>" → attempt times
        self._verified: dict[bytes, Identity] = {}
        self._dummy = _dummy_hash([u.password_hash for u in web.users])
        self._now = time.monotonic

    async def identify(self, authorization: str | None, client: str) -> Identity | None:
        """The identity the Authorization header proves, None without credentials.

        Raises TooManyFailures for a client address or user name over its budget, before
        checking anything.
        """
        if not authorization:
            return None
        scheme, _, credentials = authorization.partition(" ")
        scheme, credentials = scheme.lower(), credentials.strip()
        if scheme == "basic":
            return await self.log_in(*_basic_parts(credentials), client)
        now = self._now()
        keys = [f"addr {client}"]
        self._check_budget(keys, now)
        attempts = [self._record(key, now) for key in keys]  # counted before the check
        identity = self._bearer(credentials) if scheme == "bearer" else None
        return self._settled(identity, "(token)" if scheme == "bearer" else "?", client, attempts, now)

    async def log_in(self, name: str | None, password: str | None, client: str) -> Identity | None:
        """The user a name and password prove (HTTP Basic, or the login form), None if they do
        not. Raises TooManyFailures for a client address or user name over its budget, before
        checking anything."""
        known = self._verified.get(_cache_key(name, password)) if name is not None else None
        keys = [f"addr {client}"]
        if name is not None and known is None:
            # A name's limit spares credentials that already passed: an attacker guessing an
            # admin's password does not lock out the admin's open dashboard.
            keys.append(f"user {name[:_NAME_KEY]}")
        now = self._now()
        self._check_budget(keys, now)
        if known is not None:
            return known
        attempts = [self._record(key, now) for key in keys]  # counted before the check
        identity, tried = await self._basic(name, password)
        return self._settled(identity, tried, client, attempts, now)

    def _settled(
        self, identity: Identity | None, tried: str, client: str, attempts: list[deque[float]], now: float
    ) -> Identity | None:
        """``identity``, once a failure is logged (never with what was sent) or a success taken
        back from the counts it was added to."""
        if identity is None:
            log.warning("login failed", user=tried, client=client)
        else:
            for attempt in attempts:
                with contextlib.suppress(ValueError):  # expired meanwhile
                    attempt.remove(now)  # a success is no failure
        return identity

    def _check_budget(self, keys: list[str], now: float) -> None:
        for key in keys:
            attempts = self._failures.get(key)
            if not attempts:
                continue
            while attempts and now - attempts[0] > FAILURE_WINDOW:
                attempts.popleft()
            budget = MAX_FAILURES if key.startswith("addr ") else MAX_USER_FAILURES
            if len(attempts) >= budget:
                raise TooManyFailures(FAILURE_WINDOW - (now - attempts[0]))

    def _record(self, key: str, now: float) -> deque[float]:
        if key not in self._failures and len(self._failures) >= _TRACKED:
            self._forget_old(now)
        attempts = self._failures.setdefault(key, deque())
        attempts.append(now)
        return attempts

    def _forget_old(self, now: float) -> None:
        """Drop the keys without recent attempts; if all are recent, the oldest half."""
        recent = {k: v for k, v in self._failures.items() if v and now - v[-1] <= FAILURE_WINDOW}
        if len(recent) >= _TRACKED:
            newest_first = sorted(recent.items(), key=lambda item: item[1][-1], reverse=True)
            recent = dict(newest_first[: _TRACKED // 2])
        self._failures = recent

    async def _basic(self, name: str | None, password: str | None) -> tuple[Identity | None, str]:
        if name is None or password is None:
            return None, "?"
        user = self.users.get(name)
        # Whether the name exists or not, bcrypt runs (in a thread: ~0.2 s, or every ping would
        # wait for it). bcrypt 5 refuses passwords past 72 bytes: those check their first 72
        # bytes against the dummy, which no password matches.
        secret = password.encode()
        stored = user.password_hash if user is not None and len(secret) <= _BCRYPT_MAX else self._dummy
        matched = await asyncio.to_thread(bcrypt.checkpw, secret[:_BCRYPT_MAX], stored)
        if user is None:
            # An unknown name is logged as such: it may be a password typed in the wrong field.
            return None, "(unknown user)"
        if not matched or stored is self._dummy:
            return None, name
        identity = Identity(name, user.role, by_token=False)
        if len(self._verified) >= _VERIFIED_CACHE:
            self._verified.clear()
        self._verified[_cache_key(name, password)] = identity
        return identity, name

    def _bearer(self, token: str) -> Identity | None:
        for entry in self._tokens:
            if hmac.compare_digest(entry.token.encode(), token.encode()):
                return Identity(entry.name, entry.role, by_token=True)
        return None


def _basic_parts(credentials: str) -> tuple[str | None, str | None]:
    """(name, password) of Basic credentials; (None, None) when they are not well-formed."""
    try:
        name, sep, password = base64.b64decode(credentials, validate=True).decode().partition(":")
    except (binascii.Error, UnicodeDecodeError):
        return None, None
    return (name, password) if sep else (None, None)


def _cache_key(name: str | None, password: str | None) -> bytes:
    return hashlib.sha256(f"{name}\0{password}".encode()).digest()


def hash_password(password: str) -> str:
    """A bcrypt hash for ``[web.users.<name>] password_hash``; ValueError past 72 bytes."""
    if len(password.encode()) > _BCRYPT_MAX:
        raise ValueError(f"bcrypt uses at most {_BCRYPT_MAX} bytes of a password: choose a shorter one")
    return bcrypt.hashpw(password.encode(), bcrypt.gensalt()).decode()
