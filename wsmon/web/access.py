"""Access control for everything wsmon serves over HTTP (an ASGI middleware).

- ``/-/healthy``, ``/-/ready`` and the ``/ws/echo`` endpoint: open (health checks, self-checks).
- ``/dashboard`` and ``/api/…``: administrators only. Without any user or token under
  ``[web]`` they are off. Unauthenticated → 401, a viewer changing something → 403.
- ``/metrics``, ``/probe``, ``/``: open, unless ``[web] protect_all = true``.
- ``POST /-/reload``: open without users (like the exporter it was), admin-only with them.

State-changing requests from browsers are protected against cross-site request forgery
twice: their ``Origin`` must be wsmon's own, and they must carry the ``X-CSRF-Token`` that
only an authenticated page can read. Bearer-token clients are exempt from the token (a
browser never sends a bearer token on its own).
"""

from __future__ import annotations

import hmac
import json
from collections.abc import Callable
from urllib.parse import urlsplit

from starlette.types import ASGIApp, Receive, Scope, Send

from wsmon.config.web import WebConfig
from wsmon.errors import TooManyFailures
from wsmon.web.auth import Authenticator, Identity

__all__ = ["AccessControl"]

_SAFE_METHODS = {"GET", "HEAD", "OPTIONS"}
_OPEN = ("/-/healthy", "/-/ready")


def _area(path: str) -> str:
    if path in _OPEN:
        return "open"
    if path == "/dashboard" or path.startswith(("/dashboard/", "/api/")):
        return "admin"
    if path == "/-/reload":
        return "reload"
    return "public"


class AccessControl:
    def __init__(self, app: ASGIApp, web: Callable[[], WebConfig], csrf_token: str) -> None:
        self._app = app
        self._web = web
        self._authenticator: tuple[WebConfig, Authenticator] | None = None
        self.csrf_token = csrf_token

    def _auth(self, web: WebConfig) -> Authenticator:
        if self._authenticator is None or self._authenticator[0] is not web:
            self._authenticator = (web, Authenticator(web))  # a reload may change the users
        return self._authenticator[1]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self._app(scope, receive, send)
            return
        path, method = scope["path"], scope["method"]
        area = _area(path)
        web = self._web()
        protected = (
            area == "admin" or (area == "reload" and web.dashboard_enabled) or (area == "public" and web.protect_all)
        )
        if area == "admin" and not web.dashboard_enabled:
            await _reply(send, 404, "the dashboard is off: add a user under [web.users.<name>] (see README)")
            return
        if not protected:
            await self._app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        client = (scope.get("client") or ("?", 0))[0]
        try:
            identity = await self._auth(web).identify(headers.get("authorization"), client)
        except TooManyFailures as exc:
            await _reply(
                send, 429, "too many failed logins: try again later", {"retry-after": str(int(exc.retry_after) + 1)}
            )
            return
        if identity is None:
            await _reply(send, 401, "log in to use this", {"www-authenticate": 'Basic realm="wsmon", charset="UTF-8"'})
            return
        if method not in _SAFE_METHODS:
            problem = self._forbidden(identity, headers)
            if problem:
                await _reply(send, 403, problem)
                return
        scope.setdefault("state", {})["identity"] = identity
        await self._app(scope, receive, send)

    def _forbidden(self, identity: Identity, headers: dict[str, str]) -> str | None:
        """Why a state-changing request must be refused, or None."""
        if identity.role != "admin":
            return "your role may look but not change anything (admin needed)"
        origin = headers.get("origin")
        if origin is not None and urlsplit(origin).netloc != headers.get("host"):
            return "cross-site request refused"
        if headers.get("sec-fetch-site") == "cross-site":
            return "cross-site request refused"
        if not identity.by_token and not hmac.compare_digest(headers.get("x-csrf-token", ""), self.csrf_token):
            return "missing or wrong X-CSRF-Token (read it from GET /api/session)"
        return None


async def _reply(send: Send, status: int, message: str, extra: dict[str, str] | None = None) -> None:
    body = json.dumps({"error": message}).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    headers += [(k.encode(), v.encode()) for k, v in (extra or {}).items()]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
