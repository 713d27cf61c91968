"""``[web]``: parsing, and which targets ``/probe`` may connect to (``probe_allow``)."""

from __future__ import annotations

from pathlib import Path

import pytest

from wsmon.config.web import WebConfig, parse_web
from wsmon.errors import ConfigError
from wsmon.web.auth import hash_password

RULES = WebConfig(probe_allow=("wss://*.example.com/*", "ws://127.0.0.1:*/ws/*", "node1"))


@pytest.mark.parametrize(
    ("target", "is_name", "allowed"),
    [
        ("wss://a.example.com/x", False, True),
        ("WSS://A.EXAMPLE.COM/x", False, True),
        ("wss://a.b.example.com/x?k=v", False, True),
        ("wss://example.com/x", False, False),  # *.example.com needs a subdomain
        ("wss://evil.test/.example.com/", False, False),  # '*' never matches across '/'
        ("wss://evil.test#.example.com/", False, False),
        ("wss://a.example.com@evil.test/", False, False),  # userinfo tricks are refused outright
        ("ws://127.0.0.1:x@127.0.0.2:80/ws/", False, False),
        ("wss://a.example.com:8443/x", False, False),  # the rule's port is the default, 443
        ("ws://a.example.com/x", False, False),  # scheme must match
        ("ws://127.0.0.1:9095/ws/echo", False, True),
        ("ws://127.0.0.1/ws/echo", False, True),
        ("ws://127.0.0.1:9095/other", False, False),
        ("ws://[::1]:80/ws/x", False, False),
        ("node1", True, True),
        ("node2", True, False),
    ],
)
def test_probe_allow(target: str, is_name: bool, allowed: bool) -> None:
    assert RULES.probe_allowed(target, is_name) is allowed


def test_without_rules_anything_goes() -> None:
    assert WebConfig().probe_allowed("wss://anywhere/", False) is True


def test_users_and_tokens(tmp_path: Path) -> None:
    token = tmp_path / "token"
    token.write_text("a-long-enough-token-123\n")
    web = parse_web(
        {
            "users": {"alice": {"password_hash": hash_password("correct horse"), "role": "admin"}},
            "tokens": {"ci": {"token_file": str(token)}},
            "protect_all": True,
        },
        "t.toml",
    )
    assert web.dashboard_enabled is True
    assert [(u.name, u.role) for u in web.users] == [("alice", "admin")]
    assert [(t.name, t.role, t.token) for t in web.tokens] == [("ci", "viewer", "a-long-enough-token-123")]


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ({"user": {}}, "t.toml: [web]: unknown key 'user'"),
        (
            {"users": {"bob": {"password_hash": "plain"}}},
            "t.toml: [web] user 'bob': password_hash must be a bcrypt hash",
        ),
        ({"users": {"bob": {"role": "admin"}}}, "t.toml: [web] user 'bob': password_hash is missing"),
        ({"tls_cert_file": "/c"}, "t.toml: [web]: set both tls_cert_file and tls_key_file to serve HTTPS"),
        (
            {"tls_cert_file": "/nonexistent/c", "tls_key_file": "/nonexistent/k"},
            "t.toml: [web]: cannot read tls_cert_file: No such file or directory",
        ),
        ({"protect_all": True}, "t.toml: [web]: protect_all needs at least one user or token"),
        ({"probe_allow": ["ok", ""]}, "t.toml: [web]: probe_allow must list target names or URL patterns"),
    ],
)
def test_invalid_web_tables(table: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_web(table, "t.toml")
    assert str(caught.value).startswith(message)


def test_https_files(tmp_path: Path) -> None:
    cert, key = tmp_path / "tls.crt", tmp_path / "tls.key"
    cert.write_text("read by the server at startup\n")
    with pytest.raises(ConfigError) as caught:
        parse_web({"tls_cert_file": str(cert), "tls_key_file": str(key)}, "t.toml")
    assert str(caught.value) == "t.toml: [web]: cannot read tls_key_file: No such file or directory"
    key.write_text("read by the server at startup\n")
    web = parse_web({"tls_cert_file": str(cert), "tls_key_file": str(key)}, "t.toml")
    assert (web.tls_cert_file, web.tls_key_file) == (str(cert), str(key))


def test_passwords_longer_than_bcrypt_reads_are_refused() -> None:
    with pytest.raises(ValueError, match="at most 72 bytes"):
        hash_password("x" * 73)


# --- probe_allow: '*' within one path segment, the path as the server resolves it -------------

CAPTURE = WebConfig(probe_allow=("ws://127.0.0.1:*/capture/*", "wss://*.infura.io/ws/**"))


@pytest.mark.parametrize(
    ("target", "allowed"),
    [
        ("ws://127.0.0.1:9/capture/a", True),
        ("ws://127.0.0.1:9/capture/a?x=1/2", True),  # the query is not the path
        ("ws://127.0.0.1:9/capture/a/b/c", False),  # '*' stays within one segment
        ("ws://127.0.0.1:9/capture/../x", False),  # that is /x to the server
        ("ws://127.0.0.1:9/capture/%2e%2e/x", False),
        ("ws://127.0.0.1:9/capture/%2E%2E/x", False),
        ("ws://127.0.0.1:9/capture/%252e%252e/x", False),  # decoded twice by some stacks
        ("ws://127.0.0.1:9/capture/..;/x", False),  # Tomcat-style path parameter
        ("ws://127.0.0.1:9/capture/a%2fb", False),  # an encoded '/' is still a '/'
        ("ws://127.0.0.1:9/capture/a%5cb", False),  # as is '\' to some servers
        ("ws://127.0.0.1:9/capture/a/../b", True),  # resolves to /capture/b
        ("ws://127.0.0.1:9/other/../capture/b", True),
        ("ws://127.0.0.1%00.infura.io:9/capture/a", False),  # no NUL in a host
        ("wss://mainnet.infura.io/ws/v3/0123456789abcdef", True),  # '**' spans segments
        ("wss://mainnet.infura.io/ws", True),
        ("wss://mainnet.infura.io/ws/../../etc", False),
        ("wss://mainnet.infura.io%00.evil.test/ws/v3/x", False),
        ("wss://mainnet.infura.io\x00.evil.test/ws/v3/x", False),
        ("wss://main net.infura.io/ws/v3/x", False),
    ],
)
def test_probe_allow_matches_path_segments_as_the_server_resolves_them(target: str, allowed: bool) -> None:
    assert CAPTURE.probe_allowed(target, False) is allowed


def test_many_double_stars_stay_fast() -> None:
    rules = WebConfig(probe_allow=("ws://h/**/**/**/**/**/x",))
    assert not rules.probe_allowed("ws://h/" + "a/" * 5000 + "y", False)  # would never end if backtracking
    assert rules.probe_allowed("ws://h/" + "a/" * 5000 + "x", False)


@pytest.mark.parametrize(
    "rule",
    ["http://example.com/*", "wss://user@example.com/*", "wss:///path", "*://example.com/*"],
)
def test_probe_allow_url_patterns_are_checked(rule: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_web({"probe_allow": ["node1", rule]}, "t.toml")
    assert str(caught.value).startswith("t.toml: [web]: probe_allow entry 2: not a URL pattern: write ws://host/path")


# --- trusted_proxies --------------------------------------------------------------------------


def test_trusted_proxies() -> None:
    web = parse_web({"trusted_proxies": ["10.0.0.1", "192.168.0.0/16", "fd00::/8"]}, "t.toml")
    assert web.trusts("10.0.0.1") and not web.trusts("10.0.0.2")
    assert web.trusts("192.168.7.9") and web.trusts("::ffff:192.168.7.9")
    assert web.trusts("fd12::1") and not web.trusts("fe80::1")
    assert not web.trusts("not-an-address")
    assert not WebConfig().trusts("127.0.0.1")  # nobody by default, not even the local host


@pytest.mark.parametrize("entry", ["10.0.0.300", "proxy.local", 167772161, "10.0.0.0/40"])
def test_trusted_proxies_must_be_addresses_or_networks(entry: object) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_web({"trusted_proxies": ["10.0.0.1", entry]}, "t.toml")
    assert str(caught.value) == (
        't.toml: [web]: trusted_proxies entry 2 is not an IP address or network (e.g. "10.0.0.1" or "10.0.0.0/8")'
    )
