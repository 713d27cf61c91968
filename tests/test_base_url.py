"""Targets added by endpoint name: ``[web] base_url`` + the name typed in the dashboard.

``base_url`` is checked when the config loads; the name typed can only add one path segment
below it (never another host or path); the base's secret shows nowhere, the added target's
redacted URL included; the state file keeps the name, so a new base_url (a rotated token)
applies to the targets added under it.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests import servers
from tests.dashboard_app import dashboard
from wsmon.config.web import MAX_ENDPOINT, WebConfig, parse_web
from wsmon.continuous.monitor import Monitor
from wsmon.errors import ConfigError
from wsmon.metrics.exporter import ExporterMetrics
from wsmon.redact import secrets

CANARY = "BASECANARY-4e8d1c0b9a7f"
BASE = f"wss://feeds.example.com/ws/{CANARY}/"


# --- base_url in the config ----------------------------------------------------------------------


def test_base_url_and_its_redacted_form() -> None:
    web = parse_web({"base_url": BASE}, "t.toml")
    assert web.base_url == BASE
    assert web.redacted_base_url == "wss://feeds.example.com/****"
    assert CANARY not in repr(web)
    assert parse_web({}, "t.toml").base_url is None and WebConfig().redacted_base_url is None
    with_query = parse_web({"base_url": f"wss://feeds.example.com/?apikey={CANARY}"}, "t.toml")
    assert with_query.redacted_base_url == "wss://feeds.example.com/?apikey=****"


def test_base_url_from_the_environment_or_a_file(tmp_path: Path) -> None:
    web = parse_web({"base_url": "wss://feeds.example.com/ws/${FEED_TOKEN}/"}, "t.toml", env={"FEED_TOKEN": CANARY})
    assert web.base_url == BASE
    assert secrets.scrub(f"error near {CANARY}") == "error near ****"
    path = tmp_path / "base-url"
    path.write_text(BASE + "\n")
    assert parse_web({"base_url_file": str(path)}, "t.toml").base_url == BASE


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ({"base_url": f"https://feeds.example.com/{CANARY}/"}, "base_url: unsupported scheme https://"),
        ({"base_url": f"wss://feeds.example.com/{CANARY}"}, "base_url must end its path with / and have no #fragment"),
        ({"base_url": "wss://feeds.example.com"}, "base_url must end its path with /"),
        ({"base_url": f"wss://feeds.example.com/ws/#{CANARY}"}, "base_url must end its path with / and have no"),
        ({"base_url": f"wss://feeds example.com/{CANARY}/"}, "base_url: the target URL holds a control character"),
        ({"base_url": f"wss://127.1/{CANARY}/"}, "base_url: the target URL's host looks like an IPv4 address"),
        ({"base_url": 42}, "base_url must be a string, not an integer"),
        ({"base_url": BASE, "base_url_file": "/x"}, "set base_url or base_url_file, not both"),
        ({"base_url": "wss://h/${WSMON_UNSET_FOR_TEST}/"}, "environment variable WSMON_UNSET_FOR_TEST is not set"),
        ({"session_ttl": "0s"}, "session_ttl must be greater than 0"),
        ({"session_ttl": "200h"}, "session_ttl: duration '200h' is too long"),
    ],
)
def test_bad_base_urls_are_one_line_without_the_secret(table: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_web(table, "t.toml", env={})
    text = str(caught.value)
    assert text.startswith(f"t.toml: [web]: {message}"), text
    assert "\n" not in text and CANARY not in text


# --- the endpoint name ---------------------------------------------------------------------------

WEB = WebConfig(base_url=BASE)


@pytest.mark.parametrize(
    ("base", "name", "url"),
    [
        (BASE, "data-feed", f"{BASE}data-feed"),
        (BASE, "eth_mainnet.v2~x", f"{BASE}eth_mainnet.v2~x"),
        (BASE, ".well-named", f"{BASE}.well-named"),
        ("ws://127.0.0.1:9/", "n", "ws://127.0.0.1:9/n"),
        (f"wss://h.example/ws/?token={CANARY}&x=1", "feed", f"wss://h.example/ws/feed?token={CANARY}&x=1"),
    ],
)
def test_the_url_is_base_url_and_the_name(base: str, name: str, url: str) -> None:
    assert WebConfig(base_url=base).endpoint_url(name, "dashboard") == url


@pytest.mark.parametrize(
    "name",
    [
        "",
        "a/b",
        "/evil",
        "a?b",
        "a#b",
        ".",
        "..",
        "a..b",
        "a b",
        " feed",
        "feed\n",
        "%2e%2e",
        "a%2fb",
        "a\\b",
        "@evil.test",
        "x:1",
        "f\u00e9ed",
        "${HOME}",
        "x" * (MAX_ENDPOINT + 1),
        42,
        None,
    ],
)
def test_an_endpoint_name_cannot_leave_base_url(name: object) -> None:
    with pytest.raises(ConfigError) as caught:
        WEB.endpoint_url(name, "dashboard")
    assert str(caught.value).startswith("dashboard: endpoint must be a name of 1 to 256 letters, digits and - . _ ~")
    assert CANARY not in str(caught.value)


def test_without_base_url_there_are_no_endpoint_names() -> None:
    with pytest.raises(ConfigError) as caught:
        WebConfig().endpoint_url("data-feed", "dashboard")
    assert str(caught.value) == (
        "dashboard: an endpoint name needs [web] base_url in the config; give a full url instead"
    )


# --- the targets API -----------------------------------------------------------------------------


async def test_an_admin_adds_a_target_by_endpoint_name(tmp_path: Path) -> None:
    port = servers.refused_port()
    base = f"ws://127.0.0.1:{port}/feeds/{CANARY}/"
    async with dashboard(tmp_path, web=f'base_url = "{base}"\n') as board:
        session = (await board.client.get("/api/session")).json()
        assert session["base_url"] == f"ws://127.0.0.1:{port}/****"

        added = await board.client.post("/api/targets", json={"endpoint": "data-feed", "mode": "persistent"})
        assert added.status_code == 201, added.text
        assert added.json()["name"] == "data-feed"  # the name defaults to the endpoint's
        second = {"name": "feed-2", "endpoint": "other-feed"}
        named = await board.client.post("/api/targets", json=second)
        assert named.status_code == 201, named.text
        state = board.monitor.store.get("data-feed")
        assert state is not None and state.target.url == f"{base}data-feed"
        listed = (await board.client.get("/api/targets")).text
        assert f"ws://127.0.0.1:{port}/****" in listed
        assert CANARY not in listed + added.text + named.text + json.dumps(session)
        # The state file keeps the name, not the base URL (nor its secret).
        saved = json.loads(board.state_path.read_text())["added"]
        assert saved == [{"endpoint": "data-feed", "mode": "persistent", "name": "data-feed"}, second]
        assert CANARY not in board.state_path.read_text()

        for body, error in [
            ({"name": "x", "endpoint": "../admin"}, "dashboard: endpoint must be a name of 1 to 256"),
            ({"name": "x", "endpoint": "a/b"}, "dashboard: endpoint must be a name of 1 to 256"),
            ({"name": "x", "endpoint": "feed?x=1"}, "dashboard: endpoint must be a name of 1 to 256"),
            ({"name": "x", "endpoint": "ok", "url": "ws://127.0.0.1:9/"}, "dashboard: give url or endpoint, not both"),
            ({"name": "x", "endpoint": "y" * (MAX_ENDPOINT + 1)}, f"endpoint is longer than {MAX_ENDPOINT} characters"),
            ({"endpoint": "data-feed"}, "dashboard: target 'data-feed' exists already"),
        ]:
            response = await board.client.post("/api/targets", json=body)
            assert response.status_code == 400, body
            assert response.json()["error"].startswith(error), (body, response.json())

        # A new base_url (a rotated token) applies to the targets added under it, at the reload…
        rotated = f"ws://127.0.0.1:{port}/feeds/rotated-token-0123/"
        board.config_path.write_text(board.config_path.read_text().replace(base, rotated))
        assert board.live.reload()
        state = board.monitor.store.get("data-feed")
        assert state is not None and state.target.url == f"{rotated}data-feed"
    # …and after a restart.
    restarted = Monitor(board.live, ExporterMetrics(), state_path=board.state_path)
    restarted.start()
    try:
        state = restarted.store.get("feed-2")
        assert state is not None and state.target.url == f"{rotated}other-feed"
    finally:
        await restarted.stop()


async def test_without_base_url_the_api_asks_for_a_url(tmp_path: Path) -> None:
    async with dashboard(tmp_path) as board:
        assert (await board.client.get("/api/session")).json()["base_url"] is None
        response = await board.client.post("/api/targets", json={"name": "x", "endpoint": "data-feed"})
        assert response.status_code == 400
        assert response.json() == {
            "error": "dashboard: an endpoint name needs [web] base_url in the config; give a full url instead"
        }
