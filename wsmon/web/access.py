"""Access control for everything wsmon serves over HTTP (an ASGI middleware).

- ``/-/healthy``, ``/-/ready`` and the ``/ws/echo`` endpoint: open (health checks, self-checks).
- ``/dashboard`` and ``/api/…``: administrators only. Without any user or token under
  ``[web]`` they are off. Unauthenticated → 401, a viewer changing something → 403; a browser
  without credentials asking for the dashboard page is sent to the login form (303).
- ``/login``, ``/logout``: the login form (``wsmon.web.login``), open when the dashboard is on.
- ``/metrics``, ``/probe``, ``/``: open, unless ``[web] protect_all = true``.
- ``POST /-/reload``: open without users (like the exporter it was), admin-only with them.

Credentials are an ``Authorization`` header (HTTP Basic, a bearer token) or the session cookie
of the login form. State-changing requests from browsers are protected against cross-site
request forgery twice: their ``Origin`` must be wsmon's own (scheme, host and port), and they
must carry the ``X-CSRF-Token`` that only an authenticated page can read. Bearer-token
clients are exempt from the token (a browser never sends a bearer token on its own). Logging
in and out needs the same origin but no token (there is none before a login).

Who the client is (its address for the login limit, the scheme it used for the origin check)
is what the connection says, unless the peer is one of ``[web] trusted_proxies``: then it is
what that proxy says in ``X-Forwarded-For`` and ``X-Forwarded-Proto`` (``ForwardedHeaders``).
"""

from __future__ import annotations

import hmac
import ipaddress
import json
from collections.abc import Callable
from urllib.parse import urlsplit

from starlette.types import ASGIApp, Receive, Scope, Send

from wsmon.config.web import WebConfig
from wsmon.errors import TooManyFailures
from wsmon.web.auth import Identity
from wsmon.web.login import Logins, too_many_failures

__all__ = ["AccessControl", "ForwardedHeaders"]

_SAFE_METHODS = {"GET", "HEAD", "OPTIONS"}
_OPEN = ("/-/healthy", "/-/ready")


def _area(path: str) -> str:
    if path in _OPEN:
        return "open"
    if path in ("/login", "/logout") or path.startswith("/login/"):
        return "login"
    if path == "/dashboard" or path.startswith(("/dashboard/", "/api/")):
        return "admin"
    if path == "/-/reload":
        return "reload"
    return "public"


class ForwardedHeaders:
    """The client's address and scheme as a trusted reverse proxy reports them.

    uvicorn's own handling is off: it believes any local process by default, so anything on
    the host could claim any address and never hit the login limit. Here only the peers of
    ``[web] trusted_proxies`` are believed (read at each request: a reload may change them).
    The client is the right-most address of ``X-Forwarded-For`` that is not a trusted proxy:
    the entries left of it were written by whoever sent the request and prove nothing.
    """

    def __init__(self, app: ASGIApp, web: Callable[[], WebConfig]) -> None:
        self._app = app
        self._web = web

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        web = self._web()
        peer = scope.get("client")
        if scope["type"] in ("http", "websocket") and peer and web.trusts(peer[0]):
            scope = dict(scope)
            headers = _headers(scope)
            client = _forwarded_client(headers.get("x-forwarded-for", ""), web)
            if client is not None:
                scope["client"] = (client, 0)
            proto = headers.get("x-forwarded-proto", "").rpartition(",")[2].strip().lower()
            if proto in ("http", "https"):
                secure = proto == "https"
                if scope["type"] == "websocket":
                    scope["scheme"] = "wss" if secure else "ws"
                else:
                    scope["scheme"] = proto
        await self._app(scope, receive, send)


def _forwarded_client(header: str, web: WebConfig) -> str | None:
    chain = [entry.strip() for entry in header.split(",") if entry.strip()]
    for entry in reversed(chain):
        address = _address(entry)
        if address is None:
            return None  # garbled: believe the connection, not a guess
        if not web.trusts(address):
            return address
    return _address(chain[0]) if chain else None


def _address(entry: str) -> str | None:
    """The IP address of an X-Forwarded-For entry (``1.2.3.4``, ``1.2.3.4:5``, ``[::1]:5``)."""
    candidates = [entry]
    if entry.startswith("[") and "]" in entry:
        candidates.append(entry[1 : entry.index("]")])
    elif entry.count(":") == 1:
        candidates.append(entry.partition(":")[0])
    for candidate in candidates:
        try:
            return str(ipaddress.ip_address(candidate))
        except ValueError:
            continue
    return None


def _headers(scope: Scope) -> dict[str, str]:
    """The request's headers by lower-case name; repeated ones joined with commas."""
    headers: dict[str, str] = {}
    for key, value in scope["headers"]:
        name, text = key.decode("latin-1").lower(), value.decode("latin-1")
        headers[name] = f"{headers[name]}, {text}" if name in headers else text
    return headers


class AccessControl:
    def __init__(self, app: ASGIApp, logins: Logins, csrf_token: str) -> None:
        self._app = app
        self._logins = logins
        self.csrf_token = csrf_token

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self._app(scope, receive, send)
            return
        path, method = scope["path"], scope["method"]
        area = _area(path)
        web, _ = self._logins.current()
        protected = (
            area == "admin" or (area == "reload" and web.dashboard_enabled) or (area == "public" and web.protect_all)
        )
        if area in ("admin", "login") and not web.dashboard_enabled:
            await _reply(send, 404, "the dashboard is off: add a user under [web.users.<name>] (see README)")
            return
        if area == "login" and method not in _SAFE_METHODS:
            problem = _cross_site(_headers(scope), scope["scheme"])
            if problem:
                await _reply(send, 403, problem)
                return
        if not protected:
            await self._app(scope, receive, send)
            return
        headers = _headers(scope)
        client = (scope.get("client") or ("?", 0))[0]
        try:
            identity = await self._logins.identify(headers, client)
        except TooManyFailures as exc:
            await _reply(send, 429, "too many failed logins: try again later", too_many_failures(exc))
            return
        if identity is None:
            await self._unauthenticated(send, path, method, headers, web)
            return
        if method not in _SAFE_METHODS:
            problem = self._forbidden(identity, headers, scope["scheme"])
            if problem:
                await _reply(send, 403, problem)
                return
        scope.setdefault("state", {})["identity"] = identity
        await self._app(scope, receive, send)

    @staticmethod
    async def _unauthenticated(send: Send, path: str, method: str, headers: dict[str, str], web: WebConfig) -> None:
        """401; or, for the dashboard page asked for without credentials, the login form (303).

        The Basic challenge is left out of answers to a page's own requests (``fetch``): a
        browser would pop up its password dialog over the dashboard instead of letting the
        page go to the login form."""
        if path == "/dashboard" and method in ("GET", "HEAD") and "authorization" not in headers and web.users:
            await _reply(send, 303, "log in first: see the login page", {"location": "login"})
            return
        from_page = headers.get("sec-fetch-mode", "navigate") != "navigate"
        challenge = {} if from_page else {"www-authenticate": 'Basic realm="wsmon", charset="UTF-8"'}
        await _reply(send, 401, "log in to use this", challenge)

    def _forbidden(self, identity: Identity, headers: dict[str, str], scheme: str) -> str | None:
        """Why a state-changing request must be refused, or None."""
        if identity.role != "admin":
            return "your role may look but not change anything (admin needed)"
        cross_site = _cross_site(headers, scheme)
        if cross_site:
            return cross_site
        if not identity.by_token and not hmac.compare_digest(headers.get("x-csrf-token", ""), self.csrf_token):
            return "missing or wrong X-CSRF-Token (read it from GET /api/session)"
        return None


def _cross_site(headers: dict[str, str], scheme: str) -> str | None:
    """Why a state-changing request looks cross-site (``Origin``, ``Sec-Fetch-Site``), or None."""
    origin = headers.get("origin")
    if origin is not None and not _same_origin(origin, scheme, headers.get("host", "")):
        return "cross-site request refused"
    if headers.get("sec-fetch-site") == "cross-site":
        return "cross-site request refused"
    return None


def _same_origin(origin: str, scheme: str, host: str) -> bool:
    """Whether a browser's ``Origin`` is this server: the scheme too, since a page served over
    https is another origin than wsmon's http (and the other way round)."""
    try:
        parts = urlsplit(origin)
    except ValueError:
        return False
    return parts.scheme.lower() == scheme and bool(host) and parts.netloc.lower() == host.lower()


async def _reply(send: Send, status: int, message: str, extra: dict[str, str] | None = None) -> None:
    body = json.dumps({"error": message}).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    headers += [(k.encode(), v.encode()) for k, v in (extra or {}).items()]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
