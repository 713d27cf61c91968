"""Who may do what over HTTP: logins, roles, CSRF, brute force, and the [web] switches.

Most tests speak to a real ``wsmon serve`` (its log is read too); the config variants
(no users, ``protect_all``, ``probe_allow``) use in-process apps.
"""

from __future__ import annotations

import asyncio
import base64
import re
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import bcrypt
import httpx
import pytest

from tests import servers
from tests.realservers import WsmonProcess, web_user
from tests.servers import MS, go_duration
from wsmon.config.file import Config, parse_config
from wsmon.config.live import LiveConfig
from wsmon.config.web import User, WebConfig
from wsmon.errors import TooManyFailures
from wsmon.web import auth as auth_module
from wsmon.web.app import ExporterState, create_app
from wsmon.web.auth import Authenticator

ADMIN = ("alice", "correct horse battery")
VIEWER = ("victor", "viewer password 9")
ADMIN_TOKEN = "admin-token-0123456789abcdef"
VIEWER_TOKEN = "viewer-token-0123456789abcdef"
WRONG_PASSWORD = "Wr0ng-PASSWORD-do-not-log"
CHALLENGE = 'Basic realm="wsmon", charset="UTF-8"'
HTTP_TIMEOUT = 10_000 * MS
INTERVAL, TIMEOUT = go_duration(30_000 * MS), go_duration(1000 * MS)  # of the configured targets

ADMIN_ROUTES = [
    ("GET", "/dashboard"),
    ("GET", "/dashboard/static/dashboard.js"),
    ("GET", "/api/session"),
    ("GET", "/api/targets"),
    ("POST", "/api/targets"),
    ("DELETE", "/api/targets/probe-a"),
    ("POST", "/api/targets/probe-a/pause"),
    ("POST", "/api/targets/probe-a/reconnect"),
]
CHANGES = [
    ("POST", "/api/targets", {"name": "viewer-added", "url": "ws://127.0.0.1:9/"}),
    ("DELETE", "/api/targets/probe-a", None),
    ("POST", "/api/targets/probe-a/pause", None),
    ("POST", "/api/targets/probe-a/reconnect", None),
    ("POST", "/-/reload", None),
]


@dataclass
class Wsmon:
    base: str
    host: str  # what the Host header says: the origin a same-site page has
    log: Path
    csrf_token: str

    def client(self, local_address: str = "127.0.0.1", **kwargs: Any) -> httpx.Client:
        """A client from a loopback address of its own: failed logins are counted per address."""
        transport = httpx.HTTPTransport(local_address=local_address)
        return httpx.Client(base_url=self.base, transport=transport, timeout=HTTP_TIMEOUT, **kwargs)

    @property
    def origin(self) -> str:
        return f"http://{self.host}"

    def changes(self, token: str | None = None, origin: str | None = None) -> dict[str, str]:
        """Headers of a state-changing request as the dashboard sends it."""
        return {"X-CSRF-Token": token or self.csrf_token, "Origin": origin or self.origin}


@pytest.fixture(scope="module")
def wsmon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Wsmon]:
    directory = tmp_path_factory.mktemp("access")
    (directory / "admin.token").write_text(ADMIN_TOKEN + "\n")
    (directory / "viewer.token").write_text(VIEWER_TOKEN + "\n")
    nowhere = f"ws://127.0.0.1:{servers.refused_port()}/"
    targets = "".join(
        f'[[targets]]\nname = "{name}"\nurl = "{nowhere}"\ninterval = "{INTERVAL}"\ntimeout = "{TIMEOUT}"\n'
        for name in ("probe-a", "probe-b", "probe-c")
    )
    config = directory / "targets.toml"
    config.write_text(
        targets
        + web_user(*ADMIN, "admin")
        + web_user(*VIEWER, "viewer")
        + f"""
[web.tokens.ci]
token_file = "{directory / "admin.token"}"
role = "admin"
[web.tokens.grafana]
token_file = "{directory / "viewer.token"}"
role = "viewer"
"""
    )
    with WsmonProcess(directory, config) as process:
        session = httpx.get(f"{process.base}/api/session", auth=ADMIN, timeout=HTTP_TIMEOUT).json()
        yield Wsmon(base=process.base, host=process.address, log=process.log_path, csrf_token=session["csrf_token"])


def status_of(client: httpx.Client, name: str) -> str:
    targets: list[dict[str, Any]] = client.get("/api/targets").json()["targets"]
    (status,) = (str(t["status"]) for t in targets if t["name"] == name)
    return status


# --- logging in -------------------------------------------------------------------------------


def test_every_admin_route_needs_a_login_and_health_stays_open(wsmon: Wsmon) -> None:
    with wsmon.client() as client:
        for method, path in [*ADMIN_ROUTES, ("POST", "/-/reload")]:
            response = client.request(method, path)
            if (method, path) == ("GET", "/dashboard"):  # the page: to the login form
                assert response.status_code == 303 and response.headers["location"] == "login", response.text
                assert "www-authenticate" not in response.headers
                continue
            assert response.status_code == 401, (method, path, response.text)
            assert response.headers["www-authenticate"] == CHALLENGE
            assert response.json() == {"error": "log in to use this"}
            # A page's own request (fetch) gets no challenge: no password dialog over the page.
            fetched = client.request(method, path, headers={"Sec-Fetch-Mode": "cors"})
            assert fetched.status_code == 401 and "www-authenticate" not in fetched.headers
        for path in ("/-/healthy", "/-/ready", "/metrics", "/probe?target=probe-a", "/"):
            assert client.get(path).status_code == 200, path  # protect_all is off
        # Unknown schemes and garbage are no login either.
        for authorization in ("Digest abc", "Basic !!!notbase64", "Bearer", "Basic " + "x" * 8):
            assert client.get("/api/targets", headers={"Authorization": authorization}).status_code == 401
    # Wrong credentials on the page are a 401 with the challenge, as for scripts.
    with wsmon.client("127.0.0.9") as client:
        wrong = client.get("/dashboard", auth=("nobody-here", WRONG_PASSWORD))
        assert wrong.status_code == 401 and wrong.headers["www-authenticate"] == CHALLENGE


def test_session_says_who_you_are(wsmon: Wsmon) -> None:
    with wsmon.client(auth=ADMIN) as admin, wsmon.client(auth=VIEWER) as viewer, wsmon.client() as anonymous:
        mine = admin.get("/api/session").json()
        theirs = viewer.get("/api/session").json()
        by_token = anonymous.get("/api/session", headers={"Authorization": f"Bearer {VIEWER_TOKEN}"}).json()
    assert mine == {"user": ADMIN[0], "role": "admin", "csrf_token": wsmon.csrf_token, "base_url": None}
    assert len(wsmon.csrf_token) >= 32
    assert theirs["user"] == VIEWER[0] and theirs["role"] == "viewer"
    assert by_token["user"] == "grafana" and by_token["role"] == "viewer"


def test_the_dashboard_page_allows_only_its_own_script_and_style(wsmon: Wsmon) -> None:
    with wsmon.client(auth=VIEWER) as client:
        page = client.get("/dashboard")
        script = client.get("/dashboard/static/dashboard.js")
        style = client.get("/dashboard/static/dashboard.css")
    assert page.status_code == 200
    assert page.headers["content-security-policy"].startswith("default-src 'self'")
    assert "frame-ancestors 'none'" in page.headers["content-security-policy"]
    assert page.headers["x-content-type-options"] == "nosniff"
    html = page.text
    # Everything inline would be refused by that policy: the page has none of it.
    assert re.findall(r"<script(?![^>]*\bsrc=)[^>]*>", html) == []
    assert "<style" not in html and " style=" not in html and re.search(r"\son[a-z]+=", html) is None
    assert "http://" not in html and "https://" not in html  # nothing external
    assert script.status_code == 200
    assert re.search(r"\.(inner|outer)HTML\s*=|insertAdjacentHTML|document\.write|eval\(", script.text) is None
    assert style.status_code == 200 and "@import" not in style.text and "url(http" not in style.text


# --- roles ------------------------------------------------------------------------------------


def test_a_viewer_may_look_but_not_change(wsmon: Wsmon) -> None:
    for credentials in ({"auth": VIEWER}, {"headers": {"Authorization": f"Bearer {VIEWER_TOKEN}"}}):
        with wsmon.client(**credentials) as client:
            assert client.get("/api/targets").status_code == 200
            assert client.get("/dashboard").status_code == 200
            for method, path, body in CHANGES:
                response = client.request(method, path, json=body, headers=wsmon.changes())
                assert response.status_code == 403, (method, path, response.text)
                assert response.json() == {"error": "your role may look but not change anything (admin needed)"}
            assert status_of(client, "probe-a") != "paused"
            assert "viewer-added" not in client.get("/api/targets").text


def test_an_admin_may_change(wsmon: Wsmon) -> None:
    with wsmon.client(auth=ADMIN) as client:
        headers = wsmon.changes()
        paused = client.post("/api/targets/probe-b/pause", headers=headers)
        assert paused.status_code == 200 and paused.json() == {"ok": True, "action": "pause", "target": "probe-b"}
        assert status_of(client, "probe-b") == "paused"
        assert client.post("/api/targets/probe-b/reconnect", headers=headers).status_code == 200
        assert status_of(client, "probe-b") != "paused"

        bad = client.post("/api/targets", json={"name": "x", "url": "http://127.0.0.1/"}, headers=headers)
        assert bad.status_code == 400
        assert "unsupported scheme http://" in bad.json()["error"]
        unknown = client.post("/api/targets", json={"name": "x", "url": "ws://h/", "colour": "red"}, headers=headers)
        assert unknown.status_code == 400 and unknown.json()["error"].startswith("unknown field 'colour'")
        added = client.post(
            "/api/targets",
            json={"name": "admin-added", "url": "ws://127.0.0.1:9/abcdefghijklmnop", "interval": INTERVAL},
            headers=headers,
        )
        assert added.status_code == 201, added.text
        assert added.json()["url"] == "ws://127.0.0.1:9/****" and added.json()["runtime"] is True
        again = client.post("/api/targets", json={"name": "admin-added", "url": "ws://127.0.0.1:9/"}, headers=headers)
        assert again.status_code == 400 and "exists already" in again.json()["error"]
        assert client.delete("/api/targets/admin-added", headers=headers).status_code == 200
        assert "admin-added" not in client.get("/api/targets").text
        missing = client.post("/api/targets/nobody/pause", headers=headers)
        assert missing.status_code == 404 and missing.json() == {"error": "no target named 'nobody'"}
        reload = client.post("/-/reload", headers=headers)
        assert reload.status_code == 200, reload.text


# --- cross-site request forgery ---------------------------------------------------------------


def test_changes_need_the_csrf_token_and_wsmons_own_origin(wsmon: Wsmon) -> None:
    pause = "/api/targets/probe-a/pause"
    with wsmon.client(auth=ADMIN) as client:
        refused = {
            "no token": {"Origin": wsmon.origin},
            "wrong token": wsmon.changes(token="not-the-token"),
            "foreign origin": wsmon.changes(origin="https://evil.example"),
            "foreign port": wsmon.changes(origin="http://127.0.0.1:1"),
            "foreign scheme": wsmon.changes(origin=f"https://{wsmon.host}"),  # wsmon serves http here
            "null origin": wsmon.changes(origin="null"),
            "cross-site fetch": {**wsmon.changes(), "Sec-Fetch-Site": "cross-site"},
        }
        for why, headers in refused.items():
            response = client.post(pause, headers=headers)
            assert response.status_code == 403, why
            assert ("X-CSRF-Token" in response.json()["error"]) == why.endswith("token"), why
        assert status_of(client, "probe-a") != "paused"
        # A form post from another site carries no custom header: refused the same way.
        form = client.post(pause, data={"x": "1"}, headers={"Origin": "https://evil.example"})
        assert form.status_code == 403

        assert client.post(pause, headers=wsmon.changes()).status_code == 200
        assert status_of(client, "probe-a") == "paused"
        # No Origin at all (curl, scripts) is fine with the token: browsers always send one on POST.
        reconnect = client.post("/api/targets/probe-a/reconnect", headers={"X-CSRF-Token": wsmon.csrf_token})
        assert reconnect.status_code == 200, reconnect.text
        assert status_of(client, "probe-a") != "paused"


def test_bearer_tokens_need_no_csrf_token_but_a_viewer_token_changes_nothing(wsmon: Wsmon) -> None:
    with wsmon.client() as client:
        admin = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
        assert client.post("/api/targets/probe-c/pause", headers=admin).status_code == 200
        assert client.post("/api/targets/probe-c/reconnect", headers=admin).status_code == 200
        foreign = client.post("/api/targets/probe-c/pause", headers={**admin, "Origin": "https://evil.example"})
        assert foreign.status_code == 403  # the origin check still holds
        viewer = {"Authorization": f"Bearer {VIEWER_TOKEN}"}
        assert client.post("/api/targets/probe-c/pause", headers=viewer).status_code == 403
        assert client.get("/api/targets", headers={"Authorization": "Bearer " + ADMIN_TOKEN[:-1]}).status_code == 401


# --- brute force ------------------------------------------------------------------------------


def test_brute_force_is_slowed_down_and_never_logs_the_password(wsmon: Wsmon) -> None:
    with wsmon.client("127.0.0.2") as attacker, wsmon.client("127.0.0.1", auth=ADMIN) as someone_else:
        for _ in range(5):
            assert attacker.get("/api/targets", auth=(ADMIN[0], WRONG_PASSWORD)).status_code == 401
        locked = attacker.get("/api/targets", auth=(ADMIN[0], WRONG_PASSWORD))
        assert locked.status_code == 429
        assert locked.json() == {"error": "too many failed logins: try again later"}
        assert 1 <= int(locked.headers["retry-after"]) <= 61
        # Locked out even with the right password, for the rest of the minute…
        assert attacker.get("/api/targets", auth=ADMIN).status_code == 429
        assert attacker.get("/-/healthy").status_code == 200  # …but health checks are not logins
        # …while other addresses are not punished for it.
        assert someone_else.get("/api/targets").status_code == 200
    with wsmon.client("127.0.0.3") as token_guesser:
        guessed = token_guesser.get("/api/targets", headers={"Authorization": "Bearer guessed-token-1234"})
        assert guessed.status_code == 401
    # The log is written by another process: wait until the last failed login is in it.
    deadline = time.monotonic() + 3000 * MS
    while not any("login failed" in line and "127.0.0.3" in line for line in wsmon.log.read_text().splitlines()):
        assert time.monotonic() < deadline, "the failed token login was not logged"
        time.sleep(20 * MS)
    lines = wsmon.log.read_text().splitlines()
    failed = [line for line in lines if "login failed" in line]
    assert len([line for line in failed if "127.0.0.2" in line]) == 5, failed
    assert any(ADMIN[0] in line for line in failed)
    for line in lines:
        assert WRONG_PASSWORD not in line
        assert "guessed-token-1234" not in line
        assert ADMIN[1] not in line and ADMIN_TOKEN not in line


def test_an_overlong_password_is_a_failed_login_not_a_server_error(wsmon: Wsmon) -> None:
    with wsmon.client("127.0.0.4") as client:
        response = client.get("/api/targets", auth=(ADMIN[0], "x" * 100))
    assert response.status_code == 401


def test_a_removed_config_target_can_be_added_back(wsmon: Wsmon) -> None:
    with wsmon.client(auth=ADMIN) as client:
        nowhere = f"ws://127.0.0.1:{servers.refused_port()}/"
        assert client.delete("/api/targets/probe-c", headers=wsmon.changes()).status_code == 200
        back = client.post(
            "/api/targets",
            json={"name": "probe-c", "url": nowhere, "interval": INTERVAL, "timeout": TIMEOUT},
            headers=wsmon.changes(),
        )
        assert back.status_code == 201, back.text


# --- the [web] switches, in-process -----------------------------------------------------------


def app_client(config: Config) -> httpx.AsyncClient:
    app = create_app(ExporterState(live=LiveConfig(config)))
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://wsmon.test")


def config_with(web: str, targets: str = "") -> Config:
    import tomllib

    return parse_config(tomllib.loads(targets + web), "test.toml")


async def test_without_users_the_dashboard_is_off_and_says_how_to_turn_it_on() -> None:
    async with app_client(Config()) as client:
        for method, path in ADMIN_ROUTES:
            response = await client.request(method, path, auth=ADMIN)
            assert response.status_code == 404, (method, path)
            assert response.json() == {
                "error": "the dashboard is off: add a user under [web.users.<name>] (see README)"
            }
        assert (await client.get("/metrics")).status_code == 200
        assert (await client.get("/-/healthy")).status_code == 200
        # /-/reload stays as open as the exporter always had it (no config here: nothing to reload).
        assert (await client.post("/-/reload")).status_code == 400


async def test_protect_all_puts_metrics_and_probe_behind_the_login() -> None:
    config = config_with("[web]\nprotect_all = true\n" + web_user(*ADMIN, "viewer"))
    target = f"ws://127.0.0.1:{servers.refused_port()}/"
    async with app_client(config) as client:
        for path in ("/metrics", f"/probe?target={target}", "/"):
            response = await client.get(path)
            assert response.status_code == 401, path
            assert response.headers["www-authenticate"] == CHALLENGE
            assert (await client.get(path, auth=ADMIN)).status_code == 200, path  # a viewer may read
        assert (await client.get("/-/healthy")).status_code == 200
        assert (await client.get("/-/ready")).status_code == 200


async def test_protect_all_off_leaves_metrics_and_probe_open() -> None:
    async with app_client(config_with(web_user(*ADMIN, "admin"))) as client:
        assert (await client.get("/metrics")).status_code == 200
        assert (await client.get("/api/targets")).status_code == 401


async def test_probe_allow_refuses_other_targets() -> None:
    refused = servers.refused_port()
    config = config_with(
        '[web]\nprobe_allow = ["allowed", "ws://127.0.0.1:*/ws/*"]\n',
        targets=(
            f'[[targets]]\nname = "allowed"\nurl = "ws://127.0.0.1:{refused}/secret-token-abcdef"\n'
            f'[[targets]]\nname = "other"\nurl = "ws://127.0.0.1:{refused}/"\n'
        ),
    )
    async with app_client(config) as client:
        for target in ("other", f"ws://127.0.0.1:{refused}/elsewhere", "wss://evil.example/ws/x"):
            response = await client.get("/probe", params={"target": target})
            assert response.status_code == 403, target
            assert response.text == "target not allowed by [web] probe_allow\n"
        for target in ("allowed", f"ws://127.0.0.1:{refused}/ws/echo"):
            response = await client.get("/probe", params={"target": target})
            assert response.status_code == 200, target
            assert "probe_success 0" in response.text  # allowed, probed, refused: nobody listens there


def test_probe_allow_patterns_cannot_be_tricked_into_another_host() -> None:
    web = WebConfig(probe_allow=("wss://*.example.com/*", "ws://127.0.0.1:*/ws/*"))
    assert web.probe_allowed("wss://node1.example.com/token", False) is True
    assert web.probe_allowed("ws://127.0.0.1:9095/ws/echo", False) is True
    assert web.probe_allowed("wss://evil.test/.example.com/", False) is False
    assert web.probe_allowed("ws://127.0.0.1:x@127.0.0.2:80/ws/", False) is False


async def test_targets_are_unavailable_not_empty_while_wsmon_starts() -> None:
    async with app_client(config_with(web_user(*ADMIN, "admin"))) as client:
        response = await client.get("/api/targets", auth=ADMIN)
    assert response.status_code == 503


# --- the login limit holds against parallel guesses, forged addresses and timing --------------


def test_parallel_wrong_passwords_are_counted_before_they_are_checked(wsmon: Wsmon) -> None:
    def guess(_: int) -> int:
        with wsmon.client("127.0.0.5") as client:  # a user no other test guesses for (names are limited too)
            return client.get("/api/targets", auth=(VIEWER[0], WRONG_PASSWORD)).status_code

    with ThreadPoolExecutor(15) as pool:
        statuses = sorted(pool.map(guess, range(15)))
    assert statuses == [401] * 5 + [429] * 10


def test_forwarded_for_is_believed_from_trusted_proxies_only(tmp_path: Path) -> None:
    (tmp_path / "token").write_text(ADMIN_TOKEN + "\n")
    config = tmp_path / "targets.toml"
    config.write_text(f'[web.tokens.ci]\ntoken_file = "{tmp_path / "token"}"\nrole = "admin"\n')
    with WsmonProcess(tmp_path, config) as process, httpx.Client(base_url=process.base, timeout=10) as client:
        # From 127.0.0.1, which uvicorn believes by default: a new X-Forwarded-For each time.
        statuses = [
            client.get(
                "/api/targets",
                headers={"Authorization": "Bearer wrong-token-0123456789", "X-Forwarded-For": f"1.2.3.{i}"},
            ).status_code
            for i in range(7)
        ]
    assert statuses == [401] * 5 + [429] * 2
    failed = [line for line in process.log_path.read_text().splitlines() if "login failed" in line]
    assert len(failed) == 5 and all("127.0.0.1" in line and "1.2.3." not in line for line in failed), failed


async def test_behind_a_trusted_proxy_the_forwarded_client_and_scheme_count(tmp_path: Path) -> None:
    tokens = admin_token(tmp_path)
    # The in-process client connects from 127.0.0.1: the proxy here.
    config = config_with('[web]\ntrusted_proxies = ["127.0.0.0/8", "10.0.0.0/8"]\n' + tokens)
    wrong = {"Authorization": "Bearer wrong-token-0123456789"}
    async with app_client(config) as client:
        for _ in range(5):
            response = await client.get("/api/targets", headers={**wrong, "X-Forwarded-For": "203.0.113.7"})
            assert response.status_code == 401
        # 203.0.113.7 is locked out, however it dresses up: entries left of the proxies' are its own.
        for forwarded in ("203.0.113.7", "198.51.100.1, 203.0.113.7", "203.0.113.7, 10.1.2.3"):
            response = await client.get("/api/targets", headers={**wrong, "X-Forwarded-For": forwarded})
            assert response.status_code == 429, forwarded
        # …while another client behind the same proxy is not.
        response = await client.get("/api/targets", headers={**wrong, "X-Forwarded-For": "203.0.113.8"})
        assert response.status_code == 401
        # The page was served over https by the proxy: its Origin is https, and that is wsmon's own.
        admin = {"Authorization": f"Bearer {ADMIN_TOKEN}", "X-Forwarded-For": "203.0.113.9"}
        origin = {"Origin": "https://wsmon.test"}
        https = {**admin, **origin, "X-Forwarded-Proto": "https"}
        assert (await client.post("/-/reload", headers=https)).status_code == 400  # past access control
        refused = await client.post("/-/reload", headers={**admin, **origin})  # http to wsmon: another origin
        assert refused.status_code == 403 and refused.json() == {"error": "cross-site request refused"}


async def test_without_trusted_proxies_forwarded_headers_change_nothing(tmp_path: Path) -> None:
    tokens = admin_token(tmp_path)
    async with app_client(config_with(tokens)) as client:
        wrong = {"Authorization": "Bearer wrong-token-0123456789"}
        for i in range(5):
            response = await client.get("/api/targets", headers={**wrong, "X-Forwarded-For": f"203.0.113.{i}"})
            assert response.status_code == 401
        response = await client.get("/api/targets", headers={**wrong, "X-Forwarded-For": "203.0.113.99"})
        assert response.status_code == 429
        admin = {"Authorization": f"Bearer {ADMIN_TOKEN}", "Origin": "https://wsmon.test", "X-Forwarded-Proto": "https"}
        assert (await client.post("/-/reload", headers=admin)).status_code == 429  # still locked: same address
    async with app_client(config_with(tokens)) as client:
        admin = {"Authorization": f"Bearer {ADMIN_TOKEN}", "Origin": "https://wsmon.test", "X-Forwarded-Proto": "https"}
        refused = await client.post("/-/reload", headers=admin)
        assert refused.status_code == 403 and refused.json() == {"error": "cross-site request refused"}


def admin_token(directory: Path) -> str:
    """A ``[web.tokens.ci]`` table: ADMIN_TOKEN, role admin."""
    (directory / "admin.token").write_text(ADMIN_TOKEN + "\n")
    return f'[web.tokens.ci]\ntoken_file = "{directory / "admin.token"}"\nrole = "admin"\n'


CHEAP = 4  # bcrypt cost for the unit tests below: the same code path, 300 times faster


def authenticator(*users: tuple[str, str], cost: int = CHEAP) -> Authenticator:
    return Authenticator(
        WebConfig(users=tuple(User(n, bcrypt.hashpw(p.encode(), bcrypt.gensalt(cost)), "admin") for n, p in users))
    )


def basic(name: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{name}:{password}".encode()).decode()


async def test_unknown_users_take_as_long_as_known_ones() -> None:
    auth = authenticator(ADMIN, cost=10)
    loop = asyncio.get_running_loop()
    times: dict[str, list[float]] = {"known": [], "unknown": [], "overlong": []}
    names = {"known": ADMIN[0], "unknown": "nobody-by-that-name", "overlong": ADMIN[0]}
    for round_ in range(5):
        for kind, name in names.items():
            password = "x" * 100 if kind == "overlong" else WRONG_PASSWORD
            began = loop.time()
            assert await auth.identify(basic(name, password), f"10.{round_}.0.{len(times[kind])}") is None
            times[kind].append(loop.time() - began)
    # The fastest of each is what the work costs, whatever else the machine did meanwhile.
    fastest = {kind: min(taken) for kind, taken in times.items()}
    assert fastest["unknown"] > fastest["known"] / 2 and fastest["overlong"] > fastest["known"] / 2, times


async def test_one_user_name_is_limited_from_any_address() -> None:
    auth = authenticator(ADMIN)
    assert await auth.identify(basic(*ADMIN), "10.9.9.9") is not None  # the admin's open dashboard
    for name in (ADMIN[0], "nobody-by-that-name"):  # known or not, the same answers
        for i in range(auth_module.MAX_USER_FAILURES):
            assert await auth.identify(basic(name, WRONG_PASSWORD), f"10.1.{len(name)}.{i}") is None
        with pytest.raises(TooManyFailures):
            await auth.identify(basic(name, WRONG_PASSWORD), "10.2.0.1")
    with pytest.raises(TooManyFailures):
        await auth.identify(basic(ADMIN[0], "another guess"), "10.2.0.2")
    # The credentials that passed before still pass: guessing does not lock the admin out.
    assert await auth.identify(basic(*ADMIN), "10.9.9.9") is not None


async def test_a_success_does_not_count_as_a_failure() -> None:
    auth = authenticator(ADMIN)
    for _ in range(auth_module.MAX_FAILURES * 2):
        assert await auth.identify(basic(*ADMIN), "10.3.0.1") is not None
        auth._verified.clear()  # bcrypt every time, as a new password would be
    assert await auth.identify(basic(ADMIN[0], WRONG_PASSWORD), "10.3.0.1") is None
