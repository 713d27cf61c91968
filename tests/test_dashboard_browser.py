"""The dashboard in a real browser: Playwright drives Debian's Chromium against `wsmon serve`.

One scenario, as an operator lives it: log in with the form, find the broken target first (at
the top of the table and among the worst offenders), search and filter (kept in the page's URL,
so a link shows the same view), open a target's detail, watch a persistent target go red when
its server stops and cyan again when it comes back (no reload), add a target from the form (a
bad one first: the API's error shows), see it survive a restart of wsmon (the page keeps
polling through the outage, then sends the operator to the login form: sessions live in
wsmon's memory), pause and resume, remove with a confirmation. A canary token in the targets'
URLs never reaches the browser. Then the login itself: wrong passwords, the cookie's flags,
CSRF with a session, logout, expiry; and adding a target by endpoint name under base_url.
The fleet itself (10,000 targets) is tests/test_dashboard_fleet.py's.

Chromium, the logged-in page and the WebSocket server in a thread are tests/browser.py's.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Browser, Dialog, Locator, Page, Response, expect

from tests import servers
from tests.browser import ARTIFACTS, ThreadedServer, launch, log_in, ms, open_page
from tests.realservers import WsmonProcess, web_user
from tests.servers import MS, go_duration

CANARY_VAR = "WSMON_DASHBOARD_CANARY"
CANARY = "canary-5c1e0d7a9b3f4e21"
ADMIN = ("alice", "alice-password-1")
VIEWER = ("bob", "bob-password-22")
WAIT = 10_000 * MS  # state changes take a ping interval or a backoff: well under this


# --- fixtures -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    yield from launch()


@pytest.fixture(scope="module")
def feed_server() -> Iterator[ThreadedServer]:
    server = ThreadedServer(servers.refused_port())
    server.start()
    try:
        yield server
    finally:
        if server.running:
            server.stop()


@pytest.fixture(scope="module")
def wsmon(tmp_path_factory: pytest.TempPathFactory, feed_server: ThreadedServer) -> Iterator[WsmonProcess]:
    directory = tmp_path_factory.mktemp("dashboard")
    port = servers.refused_port()
    config = directory / "targets.toml"
    config.write_text(
        f"""
[settings]
reconnect_backoff = "{go_duration(100 * MS)}"
reconnect_backoff_max = "{go_duration(500 * MS)}"
ping_interval = "{go_duration(500 * MS)}"

[[targets]]
name = "feed"
url = "ws://127.0.0.1:{feed_server.port}/feed/${{{CANARY_VAR}}}"
mode = "persistent"
labels = {{ team = "markets" }}

[[targets]]
name = "echo-probe"
url = "ws://127.0.0.1:{port}/ws/echo?apikey=${{{CANARY_VAR}}}"
interval = "{go_duration(1000 * MS)}"
timeout = "{go_duration(800 * MS)}"

[[targets]]
name = "backup-node"
url = "ws://127.0.0.1:{servers.refused_port()}/${{{CANARY_VAR}}}"
mode = "persistent"

[web]
base_url = "ws://127.0.0.1:{feed_server.port}/feeds/${{{CANARY_VAR}}}/"
{web_user(*ADMIN, "admin")}
{web_user(*VIEWER, "viewer")}"""
    )
    wsmon = WsmonProcess(directory, config, env={CANARY_VAR: CANARY}, port=port)
    wsmon.start()
    try:
        yield wsmon
    finally:
        if wsmon.running:
            assert wsmon.stop() == 0, wsmon.log()
        assert CANARY not in wsmon.log(), "the canary token leaked into wsmon's log"


def _page(browser: Browser, wsmon: WsmonProcess, credentials: tuple[str, str]) -> Page:
    """A new browser (context of its own: no cookie yet), logged in on the dashboard."""
    return open_page(browser, wsmon.base, credentials, WAIT)


def row(page: Page, name: str) -> Locator:
    return page.locator(f'#rows tr[data-name="{name}"]')


def expect_status(page: Page, name: str, status: str) -> None:
    badge = row(page, name).locator(".status")
    expect(badge).to_have_text(status, timeout=ms(WAIT))
    expect(badge).to_have_class(re.compile(rf"\bstatus-{status}\b"), timeout=ms(WAIT))


CYAN, GREEN, RED, GREY = "rgb(0, 172, 193)", "rgb(46, 125, 50)", "rgb(211, 47, 47)", "rgb(120, 128, 140)"


def dot_colour(page: Page, name: str) -> str:
    badge = row(page, name).locator(".status")
    return str(badge.evaluate("el => getComputedStyle(el, '::before').backgroundColor"))


def no_canary_in(responses: list[Response]) -> int:
    """Check the bodies the browser still has for the canary; how many it had."""
    checked = 0
    for response in responses:
        try:
            body = response.body()
        except Exception:
            continue
        assert CANARY.encode() not in body, f"the canary leaked in {response.url}"
        checked += 1
    return checked


# --- the scenario -------------------------------------------------------------------------------


def test_dashboard_live_updates_actions_restart_and_no_secret(
    browser: Browser, wsmon: WsmonProcess, feed_server: ThreadedServer
) -> None:
    context = browser.new_context(viewport={"width": 1400, "height": 760})
    context.set_default_timeout(ms(WAIT))
    page = context.new_page()
    responses: list[Response] = []
    page.on("response", lambda response: responses.append(response))
    methods: list[str] = []
    page.on("request", lambda request: methods.append(f"{request.method} {request.url}"))
    page_errors: list[str] = []
    page.on("pageerror", lambda error: page_errors.append(str(error)))
    csp_violations: list[str] = []
    page.on("console", lambda m: csp_violations.append(m.text) if "Content Security Policy" in m.text else None)

    page.goto(f"{wsmon.base}/dashboard")
    log_in(page, wsmon.base, ADMIN)
    page.evaluate("window.__sameDocument = 'yes'")  # gone if the page reloads

    # Logged in; summary and one row per target, the broken one first.
    expect_status(page, "feed", "connected")
    expect_status(page, "echo-probe", "up")
    expect_status(page, "backup-node", "disconnected")
    for key, count in {"total": 3, "connected": 1, "disconnected": 1, "up": 1, "down": 0, "paused": 0}.items():
        expect(page.locator(f"#sum-{key}")).to_have_text(str(count))
    expect(page.locator("#sum-problems")).to_have_text("1")
    expect(page.locator("#rows tr")).to_have_count(3)
    assert page.locator("#rows tr").evaluate_all("rows => rows.map(r => r.dataset.name)") == [
        "backup-node",
        "echo-probe",
        "feed",
    ]
    worst = page.locator("#worst li")
    expect(worst).to_have_count(1)
    expect(worst.first).to_contain_text("backup-node")
    expect(worst.first.locator(".offender-what")).to_contain_text("refused:")
    expect(page.locator("#range")).to_have_text("1–3 of 3")
    expect(page.locator("#fleet-p50")).to_have_text(re.compile(r"^\d+(\.\d+)? ms$"))
    feed = row(page, "feed")
    expect(feed.locator("td.url")).to_have_text(f"ws://127.0.0.1:{feed_server.port}/****")
    expect(row(page, "echo-probe").locator("td.url")).to_have_text(f"ws://127.0.0.1:{wsmon.port}/****?apikey=****")
    expect(feed.locator("td.auto")).to_have_text("on")
    expect(feed.locator("svg.spark polyline")).to_have_count(1)  # a sparkline once there are 2 samples
    expect(feed.locator("td.latency")).to_have_text(re.compile(r"^\d+(\.\d+)? ms$"))
    expect(feed.locator("td.quantiles")).to_have_text(re.compile(r"^\d+(\.\d+)? / \d+(\.\d+)? ms$"))
    expect(row(page, "backup-node").locator(".error-reason")).to_have_text("refused")
    expect(page.locator("#updated")).to_have_text(re.compile(r"^\d\d:\d\d:\d\d$"))
    expect(page.locator("#banner")).to_be_hidden()
    # The colours (the dot before each label): cyan connected, green up, red disconnected.
    assert dot_colour(page, "feed") == CYAN
    assert dot_colour(page, "echo-probe") == GREEN
    assert dot_colour(page, "backup-node") == RED
    page.wait_for_timeout(ms(2500 * MS))  # two more polls: a fuller sparkline for the picture
    page.screenshot(path=ARTIFACTS / "dashboard-connected.png", full_page=True)

    # Search (in names, labels and URLs) and status filters, kept in the URL.
    page.get_by_label("Search").fill("team=markets")
    expect(page.locator("#rows tr")).to_have_count(1)
    expect(row(page, "feed")).to_have_count(1)
    expect(page.locator("#range")).to_have_text("1–1 of 1 (of 3 in all)")
    assert "q=team%3Dmarkets" in page.url
    page.get_by_label("Search").fill("")
    expect(page.locator("#rows tr")).to_have_count(3)
    page.locator("#chips").get_by_role("button", name=re.compile(r"^Disconnected")).click()
    expect(page.locator("#rows tr")).to_have_count(1)
    expect(row(page, "backup-node")).to_have_count(1)
    assert page.url.endswith("/dashboard?status=disconnected")
    page.locator("#chips").get_by_role("button", name=re.compile(r"^All")).click()
    expect(page.locator("#rows tr")).to_have_count(3)
    page.goto(f"{wsmon.base}/dashboard?status=problems&q=backup")  # a link to a view
    expect(page.locator("#rows tr")).to_have_count(1)
    expect(row(page, "backup-node")).to_have_count(1)
    expect(page.get_by_label("Search")).to_have_value("backup")
    expect(page.locator("#chips button[aria-pressed=true]")).to_have_text(re.compile(r"^Problems"))
    page.goto(f"{wsmon.base}/dashboard?status=sideways")
    expect(page.locator("#filter-error")).to_contain_text("unknown status 'sideways'")
    page.goto(f"{wsmon.base}/dashboard")
    page.evaluate("window.__sameDocument = 'yes'")
    feed = row(page, "feed")
    expect_status(page, "feed", "connected")

    # One click to a target's detail: its labels, its window, its errors; Escape closes it.
    feed.locator(".name-text").click()
    detail = page.locator("#detail")
    expect(detail).to_be_visible()
    expect(page.locator("#detail-name")).to_have_text("feed")
    expect(page.locator("#detail-labels")).to_have_text("team=markets")
    expect(page.locator("#detail-url")).to_have_text(f"ws://127.0.0.1:{feed_server.port}/****")
    expect(detail.locator("svg.spark polyline")).to_have_count(1)
    expect(page.locator("#detail-errors li")).to_have_text(["No errors recorded."])
    assert page.url.endswith("/dashboard?target=feed")
    page.keyboard.press("Escape")
    expect(detail).to_be_hidden()
    row(page, "backup-node").locator("td.url").click()  # anywhere on the row
    expect(page.locator("#detail-name")).to_have_text("backup-node")
    errors = page.locator("#detail-errors li")
    expect(errors.first.locator(".error-reason")).to_have_text("refused")
    expect(errors).to_have_count(1)  # the same error again and again: one line, how often, since when
    expect(errors.first.locator(".error-times")).to_have_text(re.compile(r"^ ×\d+, since \d\d:\d\d:\d\d$"))
    expect(page.locator("#detail-failures")).to_contain_text("refused")
    page.screenshot(path=ARTIFACTS / "dashboard-detail.png", full_page=False)
    page.get_by_role("button", name="Close the details").click()
    expect(detail).to_be_hidden()

    # The server goes away: red "disconnected" without a reload, with the reason; then cyan again.
    feed_server.stop()
    expect_status(page, "feed", "disconnected")
    expect(page.locator("#sum-disconnected")).to_have_text("2")
    expect(feed.locator(".error-reason")).to_have_text(re.compile(r"^(closed|refused|ping_timeout|network)$"))
    expect(feed.locator(".error-at")).to_have_text(re.compile(r"^\d\d:\d\d:\d\d \("))
    expect(page.locator("#changes")).to_have_text(re.compile(r"^1 target changed at \d\d:\d\d:\d\d$"))
    expect(page.locator("#worst li")).to_have_count(2)
    page.screenshot(path=ARTIFACTS / "dashboard-disconnected.png", full_page=True)
    feed_server.start()
    expect_status(page, "feed", "connected")
    assert page.evaluate("window.__sameDocument") == "yes"

    # Add a target: the API's 400 shows in the form; then a good one appears, marked as added.
    page.get_by_label("Name", exact=True).fill("added-one")
    page.get_by_label("URL", exact=True).fill("http://127.0.0.1/nope")
    page.get_by_role("button", name="Add target", exact=True).click()
    expect(page.locator("#add-error")).to_contain_text("unsupported scheme http://")
    # A literal token (the dashboard takes no ${VAR}): it must not come back in any answer either.
    page.get_by_label("URL", exact=True).fill(f"ws://127.0.0.1:{feed_server.port}/added/{CANARY}")
    page.get_by_label("Mode", exact=True).select_option("persistent")
    page.get_by_label("Module", exact=True).fill("ping")
    page.get_by_role("button", name="Add target", exact=True).click()
    expect(page.locator("#add-ok")).to_have_text("Added added-one.")
    expect(page.locator("#add-error")).to_be_hidden()
    expect(page.get_by_label("URL", exact=True)).to_have_value("")  # the form forgets the URL (and its token)
    added = row(page, "added-one")
    expect_status(page, "added-one", "connected")
    expect(added.locator(".badge.runtime")).to_be_visible()
    expect(added.locator(".badge.runtime")).to_have_text("added at runtime")
    expect(row(page, "feed").locator(".badge.runtime")).to_be_hidden()

    # wsmon restarts: the page says so and keeps polling; the sessions were in the old process's
    # memory, so it goes on to the login form, and after it the added target is back.
    checked = no_canary_in(responses)  # now: the bodies go with the document when the page moves on
    assert any(r.url.endswith("/api/targets") and r.request.method == "POST" and r.status == 201 for r in responses)
    responses.clear()
    assert wsmon.stop() == 0, wsmon.log()
    expect(page.locator("#banner")).to_contain_text("wsmon unreachable, retrying")
    page.screenshot(path=ARTIFACTS / "dashboard-unreachable.png", full_page=True)
    wsmon.start()
    expect(page).to_have_url(f"{wsmon.base}/login#ended")
    expect(page.locator("#ended")).to_have_text("Your session has ended: log in again.")
    log_in(page, wsmon.base, ADMIN)
    expect(page.locator("#banner")).to_be_hidden(timeout=ms(WAIT))
    expect_status(page, "added-one", "connected")
    expect(added.locator(".badge.runtime")).to_be_visible()

    # Actions after the restart: they need the new process's CSRF token.
    page.get_by_role("button", name="Disconnect feed", exact=True).click()
    expect_status(page, "feed", "paused")
    expect(feed.locator("td.auto")).to_have_text("off")
    expect(page.locator("#sum-paused")).to_have_text("1")
    expect(page.get_by_role("button", name="Disconnect feed", exact=True)).to_be_disabled()
    page.get_by_role("button", name="Resume feed", exact=True).click()
    expect_status(page, "feed", "connected")
    page.get_by_role("button", name="Pause echo-probe", exact=True).click()
    expect_status(page, "echo-probe", "paused")
    assert dot_colour(page, "echo-probe") == GREY
    page.screenshot(path=ARTIFACTS / "dashboard-overview.png", full_page=True)
    page.get_by_role("button", name="Resume echo-probe", exact=True).click()
    expect_status(page, "echo-probe", "up")
    page.get_by_role("button", name="Reconnect added-one", exact=True).click()
    expect(page.locator("#action-message")).to_have_text("added-one: reconnecting.")

    # Remove: a dismissed confirm() sends nothing; an accepted one removes the row.
    page.once("dialog", lambda dialog: dialog.dismiss())
    page.get_by_role("button", name="Remove added-one", exact=True).click()
    page.wait_for_timeout(ms(300 * MS))
    assert not [m for m in methods if m.startswith("DELETE ")]
    expect(added).to_have_count(1)
    dialogs: list[str] = []

    def accept(dialog: Dialog) -> None:
        dialogs.append(dialog.message)
        dialog.accept()

    page.once("dialog", accept)
    page.get_by_role("button", name="Remove added-one", exact=True).click()
    expect(added).to_have_count(0)
    assert 'Remove target "added-one"?' in dialogs[0]
    expect(page.locator("#sum-total")).to_have_text("3")
    assert f"DELETE {wsmon.base}/api/targets/added-one" in methods

    # The canary token never reached the browser: not in the DOM, not in any response.
    assert CANARY not in page.content()
    checked += no_canary_in(responses)
    assert checked >= 20, f"only {checked} response bodies were checked"
    assert page_errors == []
    assert csp_violations == []
    page.context.close()


def test_viewer_sees_everything_and_can_change_nothing(browser: Browser, wsmon: WsmonProcess) -> None:
    page = _page(browser, wsmon, VIEWER)
    expect_status(page, "echo-probe", "up")
    expect(page.locator("#viewer-note")).to_be_visible()
    expect(page.locator("#add-section")).to_be_hidden()
    expect(page.get_by_role("columnheader", name="Actions", exact=True)).to_be_hidden()
    actions = page.locator("button.action")
    expect(actions.first).to_be_attached()
    for button in actions.all():
        expect(button).to_be_hidden()  # none visible to anyone, screen readers included
        expect(button).to_be_disabled()
    expect(page.get_by_role("button", name="Log out", exact=True)).to_be_visible()  # but the way out
    row(page, "echo-probe").locator(".name-text").click()  # the detail: to look at, no actions
    expect(page.locator("#detail-name")).to_have_text("echo-probe")
    expect(page.locator("#detail-actions")).to_be_hidden()
    page.screenshot(path=ARTIFACTS / "dashboard-viewer.png", full_page=True)
    page.context.close()


def test_page_escapes_what_it_shows(browser: Browser, wsmon: WsmonProcess) -> None:
    """Whatever the API says is text, never markup (a hostile label or error message)."""
    page = _page(browser, wsmon, ADMIN)
    hostile = '<img src=x onerror="window.__pwned=1">'
    payload = {
        "updated_at": time.time(),
        "summary": {"total": 1},
        "total": 1,
        "matched": 1,
        "offset": 0,
        "limit": 50,
        "targets": [
            {
                "name": hostile,
                "url": hostile,
                "mode": "persistent",
                "module": hostile,
                "labels": {hostile: hostile},
                "status": hostile,
                "since": hostile,
                "latency_ms": None,
                "p50_ms": None,
                "p99_ms": None,
                "history_ms": [1, 2, None, 3],
                "auto_reconnect": True,
                "paused": False,
                "runtime": False,
                "reconnects": 0,
                "last_error": {"reason": hostile, "message": hostile, "at": time.time()},
            }
        ],
    }
    summary = {
        "version": 1,
        "counts": {"total": 1},
        "problems": 1,
        "latency": {"targets": 0, "p50_ms": None, "p99_ms": None},
        "worst": [{"name": hostile, "status": hostile, "since": 0, "url": hostile, "labels": {}, "last_error": None}],
    }
    detail = {**payload["targets"][0], "errors": [payload["targets"][0]["last_error"]], "failures": {hostile: 1}}  # type: ignore[index]
    page.route(re.compile(r".*/api/targets\?.*"), lambda route: route.fulfill(json=payload))
    page.route(re.compile(r".*/api/summary(\?.*)?$"), lambda route: route.fulfill(json=summary))
    page.route(re.compile(r".*/api/targets/[^/?]+$"), lambda route: route.fulfill(json=detail))
    page.goto(f"{wsmon.base}/dashboard")
    hostile_row = page.locator("#rows tr").first
    expect(hostile_row.locator(".name-text")).to_have_text(hostile)
    expect(hostile_row.locator(".labels")).to_have_text(f"{hostile}={hostile}")
    expect(hostile_row.locator(".error-message")).to_have_text(hostile)
    expect(hostile_row.locator(".status")).to_have_text("pending")  # an unknown status is not trusted
    expect(page.locator("#worst .target-link")).to_have_text(hostile)
    hostile_row.locator(".name-text").click()
    expect(page.locator("#detail-name")).to_have_text(hostile)
    expect(page.locator("#detail-errors .error-message")).to_have_text(hostile)
    assert page.locator("img").count() == 0
    assert page.evaluate("window.__pwned") is None
    page.context.close()


# --- the login form -----------------------------------------------------------------------------


def test_login_form_cookie_csrf_and_logout(browser: Browser, wsmon: WsmonProcess) -> None:
    context = browser.new_context(viewport={"width": 1000, "height": 600})
    context.set_default_timeout(ms(WAIT))
    page = context.new_page()
    page_errors: list[str] = []
    page.on("pageerror", lambda error: page_errors.append(str(error)))
    page.goto(f"{wsmon.base}/dashboard")
    expect(page).to_have_url(f"{wsmon.base}/login")  # no password dialog: the form
    expect(page.locator("#ended")).to_be_hidden()
    page.screenshot(path=ARTIFACTS / "login.png")

    # A wrong password: said so, the password field emptied, no cookie.
    page.get_by_label("User name", exact=True).fill(ADMIN[0])
    page.get_by_label("Password", exact=True).fill("not-the-password-1")
    page.get_by_role("button", name="Log in", exact=True).click()
    expect(page.locator("#login-error")).to_have_text("Wrong user name or password.")
    expect(page.get_by_label("Password", exact=True)).to_have_value("")
    assert context.cookies() == []
    log_in(page, wsmon.base, ADMIN)

    # The session cookie: HttpOnly (the page's scripts cannot read it), SameSite=Strict, not
    # Secure over plain http, expiring with the session (12 h by default).
    (cookie,) = context.cookies()
    assert cookie["name"] == "wsmon_session" and len(cookie["value"]) >= 43
    assert (cookie["httpOnly"], cookie["sameSite"], cookie["secure"], cookie["path"]) == (True, "Strict", False, "/")
    assert abs(cookie["expires"] - (time.time() + 12 * 3600)) < 60
    assert page.evaluate("document.cookie") == ""

    # CSRF is enforced as before: a change without the token is refused, with it passes.
    fetch = """async ([token]) => {
        const headers = token ? {"X-CSRF-Token": token} : {};
        const response = await fetch("api/targets/nobody/pause", {method: "POST", headers});
        return [response.status, await response.text()];
    }"""
    status, text = page.evaluate(fetch, [None])
    assert status == 403 and "X-CSRF-Token" in text
    token = page.evaluate("async () => (await (await fetch('api/session')).json()).csrf_token")
    status, text = page.evaluate(fetch, [token])
    assert status == 404, text  # past the access checks: there is no such target

    # Another site's page: its form post to wsmon carries no cookie (SameSite=Strict) and would
    # carry no token; nothing changes.
    evil = context.new_page()
    form = (
        f'<form method="post" action="{wsmon.base}/api/targets/echo-probe/pause"></form>'
        "<script>document.forms[0].submit()</script>"
    )
    evil.route("http://evil.test/", lambda route: route.fulfill(body=form, content_type="text/html"))
    with evil.expect_response(lambda r: r.url.endswith("/pause")) as posted:
        evil.goto("http://evil.test/")
    assert posted.value.status in (401, 403)
    evil.close()
    expect_status(page, "echo-probe", "up")

    # Logout: back to the form, the cookie gone here and worthless on the server.
    page.get_by_role("button", name="Log out", exact=True).click()
    expect(page).to_have_url(f"{wsmon.base}/login")
    assert context.cookies() == []
    page.goto(f"{wsmon.base}/dashboard")
    expect(page).to_have_url(f"{wsmon.base}/login")
    replayed = httpx.get(f"{wsmon.base}/api/session", headers={"Cookie": f"wsmon_session={cookie['value']}"})
    assert replayed.status_code == 401
    assert page_errors == []
    context.close()


def test_session_expiry_sends_the_page_to_the_login_form(browser: Browser, tmp_path: Path) -> None:
    config = tmp_path / "targets.toml"
    ttl = 3000 * MS
    config.write_text(f'[web]\nsession_ttl = "{go_duration(ttl)}"\n' + web_user(*ADMIN, "admin"))
    with WsmonProcess(tmp_path, config) as short:
        page = _page(browser, short, ADMIN)
        (cookie,) = page.context.cookies()
        began = time.monotonic()
        expect(page).to_have_url(f"{short.base}/login#ended", timeout=ms(ttl + WAIT))
        assert time.monotonic() - began > ttl - 1000 * MS  # not before its time
        expect(page.locator("#ended")).to_be_visible()
        page.screenshot(path=ARTIFACTS / "login-ended.png")
        replayed = httpx.get(f"{short.base}/api/session", headers={"Cookie": f"wsmon_session={cookie['value']}"})
        assert replayed.status_code == 401  # expired on the server too, not only in the browser
        log_in(page, short.base, ADMIN)  # and in again
        page.context.close()


def test_add_a_target_by_endpoint_name(browser: Browser, wsmon: WsmonProcess, feed_server: ThreadedServer) -> None:
    page = _page(browser, wsmon, ADMIN)
    help_text = page.locator("#add-endpoint-help")
    expect(help_text).to_be_visible()
    expect(page.locator("#add-base-url")).to_have_text(f"ws://127.0.0.1:{feed_server.port}/****")
    # A name that would leave base_url is refused, whatever the browser sends.
    page.get_by_label("URL", exact=True).fill("../admin")
    page.get_by_role("button", name="Add target", exact=True).click()
    expect(page.locator("#add-error")).to_contain_text("endpoint must be a name of 1 to 256 letters")
    # Only the endpoint name: the target is named after it, its URL is base_url + name.
    page.get_by_label("URL", exact=True).fill("data-feed")
    page.get_by_label("Mode", exact=True).select_option("persistent")
    page.get_by_role("button", name="Add target", exact=True).click()
    expect(page.locator("#add-ok")).to_have_text("Added data-feed.")
    expect_status(page, "data-feed", "connected")
    expect(row(page, "data-feed").locator("td.url")).to_have_text(f"ws://127.0.0.1:{feed_server.port}/****")
    page.screenshot(path=ARTIFACTS / "dashboard-endpoint.png", full_page=True)
    assert CANARY not in page.content()
    page.once("dialog", lambda dialog: dialog.accept())
    page.get_by_role("button", name="Remove data-feed", exact=True).click()
    expect(row(page, "data-feed")).to_have_count(0)
    page.context.close()
