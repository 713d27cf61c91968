"""Credentials (wsmon.config.credentials): one parser for ``[modules.<name>]`` and ``[[push]]``."""

from __future__ import annotations

import base64
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from wsmon.config.credentials import CREDENTIAL_KEYS, parse_authorization
from wsmon.config.modules import parse_module
from wsmon.config.push import parse_push
from wsmon.errors import ConfigError
from wsmon.redact import MASK, secrets

W = "t.toml"
UNSET = "environment variable {var} is not set; export it or use a *_file key"


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


@pytest.fixture
def files(tmp_path: Path) -> dict[str, str]:
    """``{token}`` and ``{password}`` (files with a trailing newline), ``{empty}``, ``{missing}``."""
    (tmp_path / "token").write_text("cr3d-file-token-0001\n")
    (tmp_path / "password").write_text("cr3d-file-password-02\r\n")
    (tmp_path / "empty").write_text("\n")
    return {name: str(tmp_path / name) for name in ("token", "password", "empty", "missing")}


def fill(value: Any, files: dict[str, str]) -> Any:
    if isinstance(value, dict):
        return {k: fill(v, files) for k, v in value.items()}
    return value.format_map(files) if isinstance(value, str) and value.startswith("{") else value


ENV = {"TOKEN": "cr3d-env-token-0003", "PW": "cr3d-env-password-04", "USER": "alice"}

VALID: list[tuple[dict[str, Any], str | None]] = [
    ({}, None),
    ({"bearer_token": "cr3d-literal-token-05"}, "Bearer cr3d-literal-token-05"),
    ({"bearer_token": "${TOKEN}"}, "Bearer cr3d-env-token-0003"),
    ({"bearer_token": "pre-${TOKEN}"}, "Bearer pre-cr3d-env-token-0003"),
    ({"bearer_token_file": "{token}"}, "Bearer cr3d-file-token-0001"),
    ({"basic_auth": {"username": "alice", "password": "cr3d-literal-pw-06"}}, basic("alice", "cr3d-literal-pw-06")),
    ({"basic_auth": {"username": "${USER}", "password": "${PW}"}}, basic("alice", "cr3d-env-password-04")),
    ({"basic_auth": {"username": "alice", "password_file": "{password}"}}, basic("alice", "cr3d-file-password-02")),
    ({"basic_auth": {"username": "alice"}}, basic("alice", "")),
    ({"basic_auth": {"username": "alice", "password": ""}}, basic("alice", "")),
]


@pytest.mark.parametrize(("table", "header"), VALID)
def test_valid(table: dict[str, Any], header: str | None, files: dict[str, str]) -> None:
    assert parse_authorization(fill(table, files), W, ENV) == header


def test_everything_read_is_a_secret(files: dict[str, str]) -> None:
    for table, _ in VALID:
        parse_authorization(fill(table, files), W, ENV)
    read = ["cr3d-literal-token-05", "cr3d-env-token-0003", "cr3d-file-token-0001", "cr3d-literal-pw-06"]
    read += ["cr3d-env-password-04", "cr3d-file-password-02", basic("alice", "cr3d-literal-pw-06")[6:]]
    for value in read:
        assert secrets.scrub(f"x {value} x") == f"x {MASK} x", value


def test_env_defaults_to_the_process_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WSMON_TEST_CRED", "cr3d-process-env-07")
    assert parse_authorization({"bearer_token": "${WSMON_TEST_CRED}"}, W, None) == "Bearer cr3d-process-env-07"


def test_credential_keys() -> None:
    assert {"basic_auth", "bearer_token", "bearer_token_file"} == CREDENTIAL_KEYS


# Every rule, in the order they are checked, with its exact message (after "t.toml: ").
INVALID: list[tuple[dict[str, Any], str]] = [
    # one bearer key, then one kind of credentials
    ({"bearer_token": "t", "bearer_token_file": "{token}"}, "set bearer_token or bearer_token_file, not both"),
    ({"bearer_token": 1, "bearer_token_file": 2}, "set bearer_token or bearer_token_file, not both"),
    ({"basic_auth": {"username": "u"}, "bearer_token": "t"}, "set basic_auth or bearer_token, not both"),
    (
        {"basic_auth": {"username": "u"}, "bearer_token_file": "{token}"},
        "set basic_auth or bearer_token_file, not both",
    ),
    ({"basic_auth": "u:p", "bearer_token": "${NOPE}"}, "set basic_auth or bearer_token, not both"),
    # bearer tokens
    ({"bearer_token": 1}, "bearer_token must be a string, not an integer"),
    ({"bearer_token": ["s3cr3t-wrong-type"]}, "bearer_token must be a string, not an array"),
    ({"bearer_token_file": 1}, "bearer_token_file must be a string, not an integer"),
    ({"bearer_token": "${NOPE}"}, UNSET.format(var="NOPE")),
    ({"bearer_token_file": "{missing}"}, "cannot read secret file {missing}: No such file or directory"),
    ({"bearer_token_file": "{empty}"}, "secret file {empty} is empty"),
    # basic_auth
    ({"basic_auth": "alice:s3cr3t-wrong-type"}, "basic_auth must be a table, not a string"),
    (
        {"basic_auth": {"username": "u", "pass": "p"}},
        "basic_auth: unknown key 'pass'; allowed keys are password, password_file, username",
    ),
    ({"basic_auth": {"password": "p"}}, "basic_auth needs a username"),
    ({"basic_auth": {}}, "basic_auth needs a username"),
    ({"basic_auth": {"username": 1}}, "basic_auth: username must be a string, not an integer"),
    ({"basic_auth": {"username": "${NOPE}"}}, "basic_auth: " + UNSET.format(var="NOPE")),
    ({"basic_auth": {"username": "u", "password": 5}}, "basic_auth: password must be a string, not an integer"),
    ({"basic_auth": {"username": "u", "password": "${NOPE}"}}, "basic_auth: " + UNSET.format(var="NOPE")),
    (
        {"basic_auth": {"username": "u", "password": "p", "password_file": "{password}"}},
        "basic_auth: set password or password_file, not both",
    ),
    (
        {"basic_auth": {"username": "u", "password_file": True}},
        "basic_auth: password_file must be a string, not a boolean",
    ),
    (
        {"basic_auth": {"username": "u", "password_file": "{missing}"}},
        "basic_auth: cannot read secret file {missing}: No such file or directory",
    ),
    ({"basic_auth": {"username": "u", "password_file": "{empty}"}}, "basic_auth: secret file {empty} is empty"),
]


@pytest.mark.parametrize(("table", "message"), INVALID)
def test_invalid(table: dict[str, Any], message: str, files: dict[str, str]) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_authorization(fill(table, files), W, {})
    assert str(caught.value) == f"{W}: {message.format_map(files)}"
    assert "s3cr3t" not in str(caught.value)


# --- the same parser, the same messages, for modules and push destinations ------------------

Parser = Callable[[dict[str, Any], dict[str, str]], str | None]


def via_module(table: dict[str, Any], env: dict[str, str]) -> str | None:
    headers = dict(parse_module("m", table, W, env=env).headers)
    return headers.get("Authorization")


def via_push(table: dict[str, Any], env: dict[str, str]) -> str | None:
    return parse_push({"url": "https://vm.example:8428", **table}, 1, W, env=env).authorization


USERS = [
    pytest.param(via_module, "t.toml: module 'm'", id="module"),
    pytest.param(via_push, "t.toml: push #1", id="push"),
]


@pytest.mark.parametrize(("parse", "where"), USERS)
@pytest.mark.parametrize(("table", "header"), VALID)
def test_modules_and_push_read_the_same_credentials(
    parse: Parser, where: str, table: dict[str, Any], header: str | None, files: dict[str, str]
) -> None:
    assert parse(fill(table, files), ENV) == header


@pytest.mark.parametrize(("parse", "where"), USERS)
@pytest.mark.parametrize(("table", "message"), INVALID)
def test_modules_and_push_share_the_rules(
    parse: Parser, where: str, table: dict[str, Any], message: str, files: dict[str, str]
) -> None:
    # One parser: the same rule gives the same message after the table's own prefix.
    with pytest.raises(ConfigError) as caught:
        parse(fill(table, files), {})
    assert str(caught.value) == f"{where}: {message.format_map(files)}"


@pytest.mark.parametrize(
    "table",
    [
        {"headers": {"Authorization": "Bearer a"}, "bearer_token": "b"},
        {"headers": {"authorization": "Bearer a"}, "bearer_token_file": "{token}"},
        {"headers": {"AUTHORIZATION": "Basic a"}, "basic_auth": {"username": "u"}},
    ],
)
def test_modules_refuse_an_authorization_header_with_credentials(table: dict[str, Any], files: dict[str, str]) -> None:
    with pytest.raises(ConfigError) as caught:
        via_module(fill(table, files), {})
    assert str(caught.value) == f"{W}: module 'm': set one of basic_auth, bearer_token or an Authorization header"
