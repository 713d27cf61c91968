"""``tls`` tables (wsmon.config.tls): one parser for ``[modules.<name>]`` and ``[[push]]``."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from wsmon.config.modules import parse_module
from wsmon.config.push import parse_push
from wsmon.config.tls import check_readable, parse_tls
from wsmon.errors import ConfigError
from wsmon.ws.tls import TLSOptions

W = "t.toml"
KEYS = "ca_file, cert_file, insecure_skip_verify, key_file, server_name"
PAIR = "tls needs both cert_file and key_file for a client certificate"
PEM = "-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC-pasted-as-a-path\n-----END PRIVATE KEY-----"


@pytest.fixture
def files(tmp_path: Path) -> dict[str, str]:
    """``{ca}``, ``{cert}``, ``{key}`` (files that exist), ``{dir}`` and ``{missing}``."""
    for name in ("ca.pem", "client.pem", "client.key"):
        (tmp_path / name).write_text("-----BEGIN …-----\n")
    return {
        "ca": str(tmp_path / "ca.pem"),
        "cert": str(tmp_path / "client.pem"),
        "key": str(tmp_path / "client.key"),
        "dir": str(tmp_path),
        "missing": str(tmp_path / "absent.pem"),
    }


def fill(value: Any, files: dict[str, str]) -> Any:
    """``value`` with ``{ca}``-style placeholders in its strings replaced by the paths."""
    if isinstance(value, dict):
        return {k: fill(v, files) for k, v in value.items()}
    return value.format_map(files) if isinstance(value, str) and "{" in value else value


EVERY_KEY = {
    "ca_file": "{ca}",
    "cert_file": "{cert}",
    "key_file": "{key}",
    "server_name": "n",
    "insecure_skip_verify": True,
}
VALID: list[tuple[dict[str, Any], dict[str, Any]]] = [
    ({}, {}),
    ({"ca_file": "{ca}"}, {"ca_file": "{ca}"}),
    ({"cert_file": "{cert}", "key_file": "{key}"}, {"cert_file": "{cert}", "key_file": "{key}"}),
    ({"server_name": "node.internal"}, {"server_name": "node.internal"}),
    ({"insecure_skip_verify": True}, {"insecure_skip_verify": True}),
    ({"insecure_skip_verify": False}, {}),
    (EVERY_KEY, EVERY_KEY),
]


@pytest.mark.parametrize(("table", "expected"), VALID)
def test_valid(table: dict[str, Any], expected: dict[str, Any], files: dict[str, str]) -> None:
    assert parse_tls({"tls": fill(table, files)}, W) == TLSOptions(**fill(expected, files))


def test_no_tls_table_gives_the_defaults() -> None:
    assert parse_tls({}, W) == TLSOptions()


# Every rule, in the order they are checked, with its exact message (after "t.toml: ").
INVALID: list[tuple[Any, str]] = [
    # tls is a table
    ("strict", "tls must be a table, not a string"),
    (["ca.pem"], "tls must be a table, not an array"),
    # known keys
    ({"verify": False}, f"tls: unknown key 'verify'; allowed keys are {KEYS}"),
    ({"ca": "{ca}", "zz": 1}, f"tls: unknown key 'ca'; allowed keys are {KEYS}"),
    # types
    ({"ca_file": 1}, "tls: ca_file must be a string, not an integer"),
    ({"cert_file": ["{cert}"], "key_file": "{key}"}, "tls: cert_file must be a string, not an array"),
    ({"cert_file": "{cert}", "key_file": True}, "tls: key_file must be a string, not a boolean"),
    ({"server_name": 1.5}, "tls: server_name must be a string, not a float"),
    ({"insecure_skip_verify": "yes"}, "tls: insecure_skip_verify must be a boolean, not a string"),
    ({"insecure_skip_verify": 1}, "tls: insecure_skip_verify must be a boolean, not an integer"),
    ({"ca_file": 1, "cert_file": "{cert}"}, "tls: ca_file must be a string, not an integer"),  # types first
    # cert_file and key_file together
    ({"cert_file": "{cert}"}, PAIR),
    ({"key_file": "{key}"}, PAIR),
    ({"cert_file": "{missing}"}, PAIR),  # before the files are opened
    # files can be opened (the message names the key, never the path)
    ({"ca_file": "{missing}"}, "tls: cannot read ca_file: No such file or directory"),
    ({"ca_file": ""}, "tls: cannot read ca_file: No such file or directory"),
    ({"ca_file": "{dir}"}, "tls: cannot read ca_file: Is a directory"),
    ({"ca_file": "ca\0.pem"}, "tls: cannot read ca_file: not a file path"),
    ({"cert_file": "{missing}", "key_file": "{key}"}, "tls: cannot read cert_file: No such file or directory"),
    ({"cert_file": "{cert}", "key_file": "{missing}"}, "tls: cannot read key_file: No such file or directory"),
    (
        {"ca_file": "{missing}", "cert_file": "{missing}", "key_file": "{key}"},
        "tls: cannot read ca_file: No such file or directory",
    ),
]


@pytest.mark.parametrize(("table", "message"), INVALID)
def test_invalid(table: Any, message: str, files: dict[str, str]) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_tls({"tls": fill(table, files)}, W)
    assert str(caught.value) == f"{W}: {message}"


# --- the same parser, the same messages, for modules and push destinations ------------------

Parser = Callable[[Any], TLSOptions]


def via_module(tls: Any) -> TLSOptions:
    return parse_module("m", {"tls": tls}, W, env={}).tls


def via_push(tls: Any) -> TLSOptions:
    return parse_push({"url": "https://vm.example:8428", "tls": tls}, 1, W, env={}).tls


USERS = [
    pytest.param(via_module, "t.toml: module 'm'", id="module"),
    pytest.param(via_push, "t.toml: push #1", id="push"),
]


@pytest.mark.parametrize(("parse", "where"), USERS)
@pytest.mark.parametrize(("table", "message"), INVALID)
def test_modules_and_push_share_the_rules(
    parse: Parser, where: str, table: Any, message: str, files: dict[str, str]
) -> None:
    # Push destinations too refuse `ca_file = 1`, a cert_file without key_file and a missing file.
    with pytest.raises(ConfigError) as caught:
        parse(fill(table, files))
    assert str(caught.value) == f"{where}: {message}"


@pytest.mark.parametrize(("parse", "where"), USERS)
@pytest.mark.parametrize(("table", "expected"), VALID)
def test_modules_and_push_take_the_same_keys(
    parse: Parser, where: str, table: dict[str, Any], expected: dict[str, Any], files: dict[str, str]
) -> None:
    # server_name included: the push client sends it as SNI and checks the certificate for it.
    assert parse(fill(table, files)) == TLSOptions(**fill(expected, files))


@pytest.mark.parametrize(
    "table",
    [
        {"cert_file": "{cert}", "key_file": PEM},  # a key pasted where its path belongs
        {"ca_file": PEM},
        {"server_name": PEM, "ca_file": 1},
    ],
)
def test_messages_never_quote_a_value(table: dict[str, Any], files: dict[str, str]) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_tls({"tls": fill(table, files)}, W)
    assert "PRIVATE KEY" not in str(caught.value) and "MIIE" not in str(caught.value)


# --- check_readable: also the [web] certificate and key -------------------------------------


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ({}, None),
        ({"f": "{ca}"}, None),
        ({"f": "{missing}"}, "t.toml: cannot read f: No such file or directory"),
        ({"f": "{dir}"}, "t.toml: cannot read f: Is a directory"),
        ({"f": "a\0b"}, "t.toml: cannot read f: not a file path"),
    ],
)
def test_check_readable(table: dict[str, Any], message: str | None, files: dict[str, str]) -> None:
    if message is None:
        check_readable(fill(table, files), "f", W)
        return
    with pytest.raises(ConfigError) as caught:
        check_readable(fill(table, files), "f", W)
    assert str(caught.value) == message
