"""The login form, its sessions and logout, beside HTTP Basic and bearer tokens for scripts.

The sessions' rules are tested on ``Sessions`` with a clock of our own; the HTTP side against
the app in-process (its reloads driven from here), and once against a real ``wsmon serve``
whose log must hold neither a password nor a session cookie.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import AsyncIterator, Iterator, MutableMapping
from dataclasses import dataclass, replace
from pathlib import Path

import bcrypt
import httpx
import pytest
import structlog

from tests.realservers import WsmonProcess, web_user
from tests.servers import MS, go_duration
from wsmon.config.file import load_config
from wsmon.config.live import LiveConfig
from wsmon.config.web import User
from wsmon.web import auth as auth_module
from wsmon.web import login as login_module
from wsmon.web import sessions as sessions_module
from wsmon.web.app import ExporterState, create_app
from wsmon.web.auth import MAX_FAILURES, MAX_USER_FAILURES
from wsmon.web.sessions import COOKIE, Sessions

ADMIN = ("alice", "alice-Pa55word-CANARY-1f3e")
VIEWER = ("victor", "victor-Pa55word-CANARY-9a2b")
WRONG = "wrong-Pa55word-CANARY-77c1"
ORIGIN = "http://wsmon.test"
CHEAP = 4  # bcrypt cost in-process: the same code, 300 times faster


@functools.cache  # the same hash each time: a reload of the same users keeps their sessions
def cheap_user(name: str, password: str, role: str) -> str:
    hashed = bcrypt.hashpw(password.encode(), bcrypt.gensalt(CHEAP)).decode()
    return f'[web.users.{name}]\npassword_hash = "{hashed}"\nrole = "{role}"\n'


# --- the sessions' rules, with a clock of our own ---------------------------------------------


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


ALICE = User("alice", b"$2b$04$alice", "admin")
BOB = User("bob", b"$2b$04$bob", "viewer")
USERS = {u.name: u for u in (ALICE, BOB)}


def test_a_session_lasts_its_ttl_from_the_login_whatever_is_done_meanwhile() -> None:
    clock = Clock()
    sessions = Sessions(clock)
    cookie = sessions.start(ALICE, 100)
    assert len(cookie) >= 43  # 256 random bits
    assert cookie.encode() not in b"".join(sessions._sessions)  # only its digest is kept
    for _ in range(9):
        clock.now += 10
        assert sessions.find(cookie, USERS, 100) is not None  # use does not extend it (absolute)
    clock.now += 10
    assert sessions.find(cookie, USERS, 100) is None
    assert len(sessions) == 0
    fresh = sessions.start(ALICE, 100)
    clock.now += 50
    assert sessions.find(fresh, USERS, 40) is None  # a shorter ttl (a reload) applies at once
    assert sessions.find("made-up", USERS, 100) is None


def test_logout_and_a_changed_or_removed_user_end_sessions() -> None:
    sessions = Sessions(Clock())
    alice, bob, also_alice = (sessions.start(ALICE, 100), sessions.start(BOB, 100), sessions.start(ALICE, 100))
    ended = sessions.end(alice)
    assert ended is not None and ended.user == ALICE
    assert sessions.find(alice, USERS, 100) is None and sessions.end(alice) is None
    new_password = {**USERS, "alice": replace(ALICE, password_hash=b"$2b$04$other")}
    assert sessions.find(also_alice, new_password, 100) is None
    assert sessions.find(bob, {"bob": replace(BOB, role="admin")}, 100) is None  # a new role: log in again
    kept = Sessions(Clock())
    a, b = kept.start(ALICE, 100), kept.start(BOB, 100)
    assert kept.keep_only({"bob": BOB}) == ["alice"]
    assert kept.find(a, USERS, 100) is None and kept.find(b, USERS, 100) is not None


def test_sessions_are_bounded_oldest_first(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sessions_module, "MAX_SESSIONS", 5)
    monkeypatch.setattr(sessions_module, "MAX_PER_USER", 3)
    clock = Clock()
    sessions = Sessions(clock)
    bobs = [sessions.start(BOB, 100) for _ in range(2)]
    alices = [sessions.start(ALICE, 100) for _ in range(4)]  # the 4th pushes out alice's 1st only
    assert sessions.find(alices[0], USERS, 100) is None
    assert all(sessions.find(c, USERS, 100) is not None for c in [*bobs, *alices[1:]])
    clock.now += 1
    sessions.start(User("carol", b"$2b$04$carol", "viewer"), 100)  # 6th: the oldest of all goes
    assert sessions.find(bobs[0], USERS, 100) is None
    assert len(sessions) == 5
    clock.now += 200
    sessions.start(BOB, 100)  # expired ones make room first
    assert len(sessions) == 1


# --- over HTTP, in-process ----------------------------------------------------------------------


@dataclass
class App:
    client: httpx.AsyncClient
    live: LiveConfig
    path: Path

    async def log_in(self, user: str, password: str, **headers: str) -> httpx.Response:
        return await self.client.post(
            "/login", json={"user": user, "password": password}, headers={"Origin": ORIGIN, **headers}
        )

    async def session_cookie(self, user: str, password: str) -> str:
        response = await self.log_in(user, password)
        assert response.status_code == 200, response.text
        self.client.cookies.clear()  # each test says which cookie it sends
        return str(response.cookies[COOKIE])

    def rewrite(self, text: str) -> None:
        self.path.write_text(text)
        assert self.live.reload()


def config_text(web: str = "", admin_password: str = ADMIN[1], viewer: bool = True) -> str:
    users = cheap_user(ADMIN[0], admin_password, "admin") + (cheap_user(*VIEWER, "viewer") if viewer else "")
    return '[web]\ntrusted_proxies = ["127.0.0.1"]\n' + web + users


@pytest.fixture
async def app(tmp_path: Path) -> AsyncIterator[App]:
    path = tmp_path / "targets.toml"
    path.write_text(config_text())
    live = LiveConfig(load_config(path), path=str(path))
    transport = httpx.ASGITransport(app=create_app(ExporterState(live=live)))
    async with httpx.AsyncClient(transport=transport, base_url=ORIGIN) as client:
        yield App(client, live, path)


def sent(cookie: str) -> dict[str, str]:
    """The header of a request carrying ``cookie`` as the session cookie."""
    return {"Cookie": f"{COOKIE}={cookie}"}


@pytest.fixture
def logs(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[MutableMapping[str, object]]]:
    """What the login code logs during the test, at every level, whatever an earlier test's
    ``configure_logging()`` left (a level, loggers cached under it); put back afterwards."""
    saved = structlog.get_config()
    structlog.configure(
        wrapper_class=structlog.make_filtering_bound_logger(logging.DEBUG), cache_logger_on_first_use=False
    )
    for module in (auth_module, login_module):
        monkeypatch.setattr(module, "log", structlog.get_logger("wsmon.web"))
    try:
        with structlog.testing.capture_logs() as entries:
            yield entries
    finally:
        structlog.configure(**saved)


def set_cookie(response: httpx.Response) -> list[str]:
    """The attributes of the Set-Cookie header, the first being name=value."""
    (header,) = response.headers.get_list("set-cookie")
    return [part.strip() for part in header.split(";")]


async def test_the_login_form_gives_a_session_cookie_the_page_cannot_read(app: App) -> None:
    page = await app.client.get("/login")
    assert page.status_code == 200 and 'id="login-form"' in page.text
    assert page.headers["content-security-policy"].startswith("default-src 'self'")
    for asset in ("login.js", "login.css"):
        assert (await app.client.get(f"/login/static/{asset}")).status_code == 200
    assert (await app.client.get("/login/static/dashboard.js")).status_code == 404  # only the login's own

    response = await app.log_in(*ADMIN)
    assert response.status_code == 200 and response.json() == {"user": ADMIN[0], "role": "admin"}
    first, *attributes = set_cookie(response)
    name, _, value = first.partition("=")
    assert name == COOKIE and len(value) >= 43
    assert sorted(attributes) == ["HttpOnly", "Max-Age=43200", "SameSite=Strict"]  # 12 h; no Secure over http
    app.client.cookies.clear()

    cookies = sent(value)
    session = await app.client.get("/api/session", headers=cookies)
    assert session.status_code == 200 and session.json()["user"] == ADMIN[0]
    assert (await app.client.get("/dashboard", headers=cookies)).status_code == 200
    again = await app.client.get("/login", headers=cookies)  # logged in already: on to the dashboard
    assert again.status_code == 303 and again.headers["location"] == "dashboard"


async def test_without_a_session_the_page_goes_to_the_login_form_and_the_api_answers_401(app: App) -> None:
    for cookies in ({}, sent("made-up-session-id")):
        page = await app.client.get("/dashboard", headers=cookies)
        assert page.status_code == 303 and page.headers["location"] == "login"
        api = await app.client.get("/api/targets", headers={**cookies, "Sec-Fetch-Mode": "cors"})
        assert api.status_code == 401 and "www-authenticate" not in api.headers


async def test_the_cookie_is_secure_when_wsmon_is_reached_over_https(app: App) -> None:
    response = await app.log_in(*ADMIN, **{"X-Forwarded-Proto": "https", "Origin": "https://wsmon.test"})
    assert response.status_code == 200, response.text
    assert "Secure" in set_cookie(response)


async def test_a_failed_login_says_so_and_sets_nothing(app: App, logs: list[MutableMapping[str, object]]) -> None:
    wrong = await app.log_in(ADMIN[0], WRONG)
    unknown = await app.log_in("nobody", WRONG)
    for response in (wrong, unknown):  # the same answer: no telling which names exist
        assert response.status_code == 401 and response.json() == {"error": "wrong user name or password"}
        assert "set-cookie" not in response.headers and "www-authenticate" not in response.headers
    assert [(e["event"], e["user"]) for e in logs] == [("login failed", ADMIN[0]), ("login failed", "(unknown user)")]
    assert WRONG not in repr(logs)


@pytest.mark.parametrize(
    ("headers", "body", "status", "error"),
    [
        ({"Origin": "https://evil.example"}, None, 403, "cross-site request refused"),
        ({"Origin": "http://wsmon.test:8080"}, None, 403, "cross-site request refused"),
        ({"Sec-Fetch-Site": "cross-site"}, None, 403, "cross-site request refused"),
        ({}, {"user": ADMIN[0], "password": ADMIN[1]}, 415, 'send the login as JSON: {"user": "…", "password": "…"}'),
        ({}, b'{"user": "alice"}', 400, 'send the login as JSON: {"user": "…", "password": "…"}'),
        ({}, b"not json", 400, 'send the login as JSON: {"user": "…", "password": "…"}'),
    ],
)
async def test_a_login_from_another_site_or_not_as_json_is_refused(
    app: App, headers: dict[str, str], body: dict[str, str] | bytes | None, status: int, error: str
) -> None:
    """A cross-site page cannot log a browser into an account of its choosing: its Origin is
    refused, and a cross-site form cannot send JSON."""
    if body is None:
        response = await app.client.post("/login", json={"user": ADMIN[0], "password": ADMIN[1]}, headers=headers)
    elif isinstance(body, dict):  # what a cross-site <form> can send
        response = await app.client.post("/login", data=body, headers=headers)
    else:
        response = await app.client.post("/login", content=body, headers={"Content-Type": "application/json"})
    assert response.status_code == status and response.json() == {"error": error}
    assert "set-cookie" not in response.headers


async def test_changes_with_a_session_need_the_csrf_token_and_the_same_origin(app: App) -> None:
    admin = sent(await app.session_cookie(*ADMIN))
    token = (await app.client.get("/api/session", headers=admin)).json()["csrf_token"]
    # /-/reload is past access control when it answers anything but 401/403 (400: no config file).
    no_token = await app.client.post("/-/reload", headers={**admin, "Origin": ORIGIN})
    assert no_token.status_code == 403 and "X-CSRF-Token" in no_token.json()["error"]
    foreign = await app.client.post(
        "/-/reload", headers={**admin, "Origin": "https://evil.example", "X-CSRF-Token": token}
    )
    assert foreign.status_code == 403 and foreign.json() == {"error": "cross-site request refused"}
    done = await app.client.post("/-/reload", headers={**admin, "Origin": ORIGIN, "X-CSRF-Token": token})
    assert done.status_code == 400 and done.text.startswith("nothing to reload"), done.text
    viewer = sent(await app.session_cookie(*VIEWER))
    looked = await app.client.get("/api/session", headers=viewer)
    assert looked.json()["role"] == "viewer"
    refused = await app.client.post("/-/reload", headers={**viewer, "Origin": ORIGIN, "X-CSRF-Token": token})
    assert refused.status_code == 403 and "admin needed" in refused.json()["error"]


async def test_logout_ends_the_session_on_the_server(app: App, logs: list[MutableMapping[str, object]]) -> None:
    cookie = await app.session_cookie(*ADMIN)
    other = await app.session_cookie(*ADMIN)  # another browser of the same user
    foreign = await app.client.post("/logout", headers={**sent(cookie), "Origin": "https://evil.example"})
    assert foreign.status_code == 403
    assert (await app.client.get("/api/session", headers=sent(cookie))).status_code == 200
    out = await app.client.post("/logout", headers={**sent(cookie), "Origin": ORIGIN})
    assert out.status_code == 200 and out.json() == {"ok": True}
    assert set_cookie(out)[:2] == [f"{COOKIE}=", "Max-Age=0"]
    assert [(e["event"], e["user"]) for e in logs] == [("logged in", ADMIN[0])] * 2 + [("logged out", ADMIN[0])]
    assert cookie not in repr(logs)
    app.client.cookies.clear()
    # The cookie, kept and sent again (a copy, a stolen one), is worth nothing now.
    assert (await app.client.get("/api/session", headers=sent(cookie))).status_code == 401
    assert (await app.client.get("/dashboard", headers=sent(cookie))).status_code == 303
    assert (await app.client.get("/api/session", headers=sent(other))).status_code == 200
    again = await app.client.post("/logout", headers={"Origin": ORIGIN})  # no session: fine all the same
    assert again.status_code == 200


async def test_sessions_expire(app: App) -> None:
    app.rewrite(config_text(f'session_ttl = "{go_duration(400 * MS)}"\n'))
    response = await app.log_in(*ADMIN)
    assert "Max-Age=1" in set_cookie(response)  # whole seconds, rounded up: never 0 (gone at once)
    cookies = sent(str(response.cookies[COOKIE]))
    app.client.cookies.clear()
    assert (await app.client.get("/api/session", headers=cookies)).status_code == 200
    await asyncio.sleep(500 * MS)
    assert (await app.client.get("/api/session", headers=cookies)).status_code == 401
    assert (await app.client.get("/dashboard", headers=cookies)).status_code == 303


async def test_a_reload_that_changes_or_removes_a_user_ends_their_sessions(app: App) -> None:
    alice = sent(await app.session_cookie(*ADMIN))
    victor = sent(await app.session_cookie(*VIEWER))
    # Same users, another setting: sessions live on.
    app.rewrite(config_text("protect_all = true\n"))
    assert (await app.client.get("/api/session", headers=alice)).status_code == 200
    assert (await app.client.get("/metrics", headers=victor)).status_code == 200  # any protected area
    # Alice's new password: her sessions end, victor's do not.
    app.rewrite(config_text(admin_password="a-new-password-1"))
    assert (await app.client.get("/api/session", headers=alice)).status_code == 401
    assert (await app.client.get("/api/session", headers=victor)).status_code == 200
    # Victor removed: his end too.
    app.rewrite(config_text(admin_password="a-new-password-1", viewer=False))
    assert (await app.client.get("/api/session", headers=victor)).status_code == 401


async def test_failed_logins_are_limited_per_address_and_per_name_with_basic_alike(app: App) -> None:
    """Behind a proxy all users share its address: the name's own limit holds from any address,
    and the form and HTTP Basic count against the same limits."""

    def client(address: str) -> dict[str, str]:
        return {"X-Forwarded-For": address}

    # One address: Basic and the form together.
    for i in range(MAX_FAILURES):
        if i % 2:
            response = await app.client.get("/api/session", auth=("someone", WRONG), headers=client("10.0.0.1"))
        else:
            response = await app.log_in("someone", WRONG, **client("10.0.0.1"))
        assert response.status_code == 401, i
    locked = await app.log_in(*ADMIN, **client("10.0.0.1"))  # the right password too, for now
    assert locked.status_code == 429 and 1 <= int(locked.headers["retry-after"]) <= 61
    assert locked.json() == {"error": "too many failed logins: try again later"}
    # One name, from many addresses.
    for i in range(MAX_USER_FAILURES):
        assert (await app.log_in(VIEWER[0], WRONG, **client(f"10.1.0.{i}"))).status_code == 401
    assert (await app.log_in(VIEWER[0], WRONG, **client("10.2.0.1"))).status_code == 429
    basic = await app.client.get("/api/session", auth=(VIEWER[0], WRONG), headers=client("10.2.0.2"))
    assert basic.status_code == 429
    # Other names and addresses are not punished for it.
    assert (await app.log_in(*ADMIN, **client("10.3.0.1"))).status_code == 200


async def test_the_login_is_off_with_the_dashboard(tmp_path: Path) -> None:
    path = tmp_path / "targets.toml"
    path.write_text("[settings]\n")
    transport = httpx.ASGITransport(app=create_app(ExporterState(live=LiveConfig(load_config(path)))))
    async with httpx.AsyncClient(transport=transport, base_url=ORIGIN) as client:
        for method, route in (("GET", "/login"), ("POST", "/login"), ("POST", "/logout")):
            response = await client.request(method, route, headers={"Origin": ORIGIN})
            assert response.status_code == 404, (method, route)


# --- a real wsmon: nothing secret in its log --------------------------------------------------


def test_no_password_or_cookie_in_the_log(tmp_path: Path) -> None:
    config = tmp_path / "targets.toml"
    config.write_text(web_user(*ADMIN, "admin"))
    with WsmonProcess(tmp_path, config) as wsmon, httpx.Client(base_url=wsmon.base, timeout=10) as client:
        origin = {"Origin": wsmon.base}
        wrong = client.post("/login", json={"user": ADMIN[0], "password": WRONG}, headers=origin)
        assert wrong.status_code == 401
        right = client.post("/login", json={"user": ADMIN[0], "password": ADMIN[1]}, headers=origin)
        assert right.status_code == 200
        cookie = str(right.cookies[COOKIE])
        assert client.get("/dashboard").status_code == 200
        assert client.post("/logout", headers=origin).status_code == 200
        assert client.get("/api/session", headers=sent(cookie)).status_code == 401
        deadline = time.monotonic() + 3000 * MS
        while "logged out" not in wsmon.log():
            assert time.monotonic() < deadline, wsmon.log()
            time.sleep(20 * MS)
    log = wsmon.log()
    assert "login failed" in log and "logged in" in log
    for secret in (ADMIN[1], WRONG, cookie):
        assert secret not in log
