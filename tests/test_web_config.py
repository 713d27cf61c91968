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
