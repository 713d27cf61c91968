"""Login sessions: kept in wsmon's memory, named by a random opaque cookie.

The login form (``wsmon.web.login``) starts one for a user of ``[web.users]``. It ends

- ``[web] session_ttl`` after the login (an absolute lifetime: activity does not extend it;
  the cookie's ``Max-Age`` tells the browser the same);
- at logout;
- when the user's entry in the config changes or goes (a reload with a new password or role,
  or without the user);
- when wsmon restarts (nothing is written to disk);
- when it is the oldest and room is needed: at most ``MAX_SESSIONS`` in all, and
  ``MAX_PER_USER`` per user.

The cookie is 256 random bits; the table keeps only their SHA-256, so that what it holds is
nothing a client could present.
"""

from __future__ import annotations

import hashlib
import secrets
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from wsmon.config.web import User

__all__ = ["COOKIE", "MAX_PER_USER", "MAX_SESSIONS", "Session", "Sessions"]

COOKIE = "wsmon_session"
MAX_SESSIONS = 10_000  # in all: ~2 MB
MAX_PER_USER = 100  # a script logging in over and over pushes out its own sessions, not others'


@dataclass(frozen=True, slots=True)
class Session:
    user: User  # the account as it was at the login: a changed password or role ends the session
    started: float  # monotonic seconds


class Sessions:
    def __init__(self, now: Callable[[], float] = time.monotonic) -> None:
        self._sessions: dict[bytes, Session] = {}  # cookie digest → session, oldest first
        self._now = now

    def __len__(self) -> int:
        return len(self._sessions)

    def start(self, user: User, ttl: float) -> str:
        """A new session for ``user``: the cookie value that names it."""
        self._expire(ttl)
        mine = [key for key, session in self._sessions.items() if session.user.name == user.name]
        if len(mine) >= MAX_PER_USER:
            del self._sessions[mine[0]]
        if len(self._sessions) >= MAX_SESSIONS:
            del self._sessions[next(iter(self._sessions))]
        cookie = secrets.token_urlsafe(32)
        self._sessions[_digest(cookie)] = Session(user, self._now())
        return cookie

    def find(self, cookie: str, users: Mapping[str, User], ttl: float) -> Session | None:
        """The live session ``cookie`` names, for a user still configured as at its login."""
        key = _digest(cookie)
        session = self._sessions.get(key)
        if session is None:
            return None
        if self._now() - session.started >= ttl or users.get(session.user.name) != session.user:
            del self._sessions[key]
            return None
        return session

    def end(self, cookie: str) -> Session | None:
        """End the session ``cookie`` names (logout); it, or None if there was none."""
        return self._sessions.pop(_digest(cookie), None)

    def keep_only(self, users: Mapping[str, User]) -> list[str]:
        """End the sessions of users who are gone or changed (at a reload); their names."""
        ended = {k: s.user.name for k, s in self._sessions.items() if users.get(s.user.name) != s.user}
        for key in ended:
            del self._sessions[key]
        return sorted(set(ended.values()))

    def _expire(self, ttl: float) -> None:
        """Drop the expired sessions: the oldest, at the front."""
        now = self._now()
        while self._sessions:
            key = next(iter(self._sessions))
            if now - self._sessions[key].started < ttl:
                return
            del self._sessions[key]


def _digest(cookie: str) -> bytes:
    return hashlib.sha256(cookie.encode()).digest()
