"""The login form and logout (``/login``, ``/logout``), and who a request comes from.

Browsers log in with the form: ``POST /login`` with a JSON body ``{"user", "password"}``
answers with a session cookie (``wsmon.web.sessions``): ``HttpOnly``, ``SameSite=Strict``,
``Secure`` when wsmon is reached over HTTPS (its own TLS, or a trusted proxy's
``X-Forwarded-Proto``), ``Max-Age`` the session's lifetime, and no ``Path``, so that it is
the folder of ``/login`` (``/``, or a reverse proxy's prefix). ``POST /logout`` ends the
session on the server and clears the cookie. Scripts keep using HTTP Basic or a bearer token.

The form is checked by the same ``Authenticator`` as Basic, and counts against the same limits
(per client address and per user name). A cross-site page cannot log a browser in or out:
``wsmon.web.access`` refuses a foreign ``Origin`` here as everywhere, and the login must be
JSON, which a cross-site form cannot send. No password, cookie value or token is ever logged
or sent back.
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import structlog
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import Route

from wsmon.config.web import WebConfig
from wsmon.errors import TooManyFailures
from wsmon.web.auth import Authenticator, Identity
from wsmon.web.sessions import COOKIE, Sessions

__all__ = ["Logins", "login_routes", "too_many_failures"]

log = structlog.get_logger("wsmon.web")

_COOKIE_PAIR = re.compile(r"\s*([^=;,\s]+)\s*=\s*([^;,]*)")


class Logins:
    """The login checks and sessions for the ``[web]`` config in force (a reload may change it)."""

    def __init__(self, web: Callable[[], WebConfig], now: Callable[[], float] = time.monotonic) -> None:
        self._web = web
        self._current: tuple[WebConfig, Authenticator] | None = None
        self.sessions = Sessions(now)

    def current(self) -> tuple[WebConfig, Authenticator]:
        """The config in force and its Authenticator; a new config ends the sessions of the
        users it changed or removed."""
        web = self._web()
        if self._current is None or self._current[0] is not web:
            authenticator = Authenticator(web)
            if self._current is not None:
                ended = self.sessions.keep_only(authenticator.users)
                if ended:
                    log.info("sessions ended: their user changed or is gone", users=ended)
            self._current = (web, authenticator)
        return self._current

    async def identify(self, headers: Mapping[str, str], client: str) -> Identity | None:
        """Who the request comes from: its Authorization header (Basic, Bearer), else its
        session cookie; None without either. TooManyFailures as ``Authenticator.identify``."""
        authorization = headers.get("authorization")
        if authorization:
            return await self.current()[1].identify(authorization, client)
        return self.by_cookie(headers)

    def by_cookie(self, headers: Mapping[str, str]) -> Identity | None:
        cookie = session_cookie(headers)
        if cookie is None:
            return None
        web, authenticator = self.current()
        session = self.sessions.find(cookie, authenticator.users, web.session_ttl)
        return None if session is None else Identity(session.user.name, session.user.role, by_token=False)


def session_cookie(headers: Mapping[str, str]) -> str | None:
    """The value of wsmon's session cookie in a request's ``Cookie`` header(s), if any."""
    for name, value in _COOKIE_PAIR.findall(headers.get("cookie", "")):
        if name == COOKIE and value:
            return str(value)
    return None


def _set_cookie(value: str, max_age: int, secure: bool) -> dict[str, str]:
    attributes = f"{COOKIE}={value}; Max-Age={max_age}; HttpOnly; SameSite=Strict" + ("; Secure" if secure else "")
    return {"Set-Cookie": attributes}


def too_many_failures(exc: TooManyFailures) -> dict[str, str]:
    """The headers of a 429 for a client or user name over its login budget."""
    return {"retry-after": str(int(exc.retry_after) + 1)}


def _error(status: int, message: str, headers: Mapping[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status, headers=headers)


def login_routes(logins: Logins, page: Path, assets: Mapping[str, Path], headers: Mapping[str, str]) -> list[Route]:
    """``GET /login`` (the form, ``page``; with a live session: on to the dashboard), its
    ``assets`` under ``/login/static/``, ``POST /login`` and ``POST /logout``."""

    async def form(request: Request) -> Response:
        if logins.by_cookie(request.headers) is not None:
            return RedirectResponse("dashboard", status_code=303)
        return FileResponse(page, headers=dict(headers))

    def asset(path: Path) -> Callable[[Request], Any]:
        async def serve(_: Request) -> Response:
            return FileResponse(path, headers=dict(headers))

        return serve

    async def log_in(request: Request) -> Response:
        if request.headers.get("content-type", "").partition(";")[0].strip().lower() != "application/json":
            return _error(415, 'send the login as JSON: {"user": "…", "password": "…"}')
        try:
            body = await request.json()
        except ValueError:
            body = None
        if not isinstance(body, dict) or not all(isinstance(body.get(k), str) for k in ("user", "password")):
            return _error(400, 'send the login as JSON: {"user": "…", "password": "…"}')
        web, authenticator = logins.current()
        client = request.client.host if request.client else "?"
        try:
            identity = await authenticator.log_in(body["user"], body["password"], client)
        except TooManyFailures as exc:
            return _error(429, "too many failed logins: try again later", too_many_failures(exc))
        user = authenticator.users.get(identity.name) if identity is not None else None
        if user is None:
            return _error(401, "wrong user name or password")
        cookie = logins.sessions.start(user, web.session_ttl)
        log.info("logged in", user=user.name, client=client)
        secure = request.url.scheme == "https"
        return JSONResponse(
            {"user": user.name, "role": user.role}, headers=_set_cookie(cookie, math.ceil(web.session_ttl), secure)
        )

    async def log_out(request: Request) -> Response:
        cookie = session_cookie(request.headers)
        session = logins.sessions.end(cookie) if cookie is not None else None
        if session is not None:
            log.info("logged out", user=session.user.name)
        return JSONResponse({"ok": True}, headers=_set_cookie("", 0, request.url.scheme == "https"))

    return [
        Route("/login", form, methods=["GET", "HEAD"]),
        Route("/login", log_in, methods=["POST"]),
        Route("/logout", log_out, methods=["POST"]),
        *(Route(f"/login/static/{name}", asset(path), methods=["GET", "HEAD"]) for name, path in assets.items()),
    ]
