"""Probe modules: built-ins, defaults and ``[modules.<name>]`` validation (wsmon.probe.module, wsmon.config.modules)."""

from __future__ import annotations

import base64
import re
from pathlib import Path
from typing import Any

import pytest

from wsmon import __version__
from wsmon.config.modules import parse_module
from wsmon.errors import ConfigError
from wsmon.probe.jsonpath import JsonPath
from wsmon.probe.module import BUILTIN_MODULES, DEFAULT_MAX_MESSAGE_SIZE, Module, Step
from wsmon.redact import MASK, secrets
from wsmon.ws.tls import TLSOptions

W = "t.toml: module 'm'"  # where every message below starts


def parse(table: dict[str, Any], env: dict[str, str] | None = None) -> Module:
    return parse_module("m", table, "t.toml", env={} if env is None else env)


# --- built-ins and defaults ------------------------------------------------------------------


def test_builtin_modules() -> None:
    assert set(BUILTIN_MODULES) >= {"ping", "connect"}
    ping, connect = BUILTIN_MODULES["ping"], BUILTIN_MODULES["connect"]
    assert (ping.name, ping.ping, ping.pings, ping.steps) == ("ping", True, 1, ())
    assert (connect.name, connect.ping, connect.steps) == ("connect", False, ())


def test_empty_table_gives_the_defaults() -> None:
    assert parse({}) == Module(name="m")
    module = Module(name="m")
    assert module.timeout is None
    assert (module.ping, module.pings, module.ping_spacing) == (True, 1, 0.0)
    assert (module.headers, module.subprotocols, module.proxy_url) == ((), (), None)
    assert module.tls == TLSOptions()
    assert (module.ip_protocol, module.ip_protocol_fallback) == ("auto", True)
    assert module.max_message_size == DEFAULT_MAX_MESSAGE_SIZE


@pytest.mark.parametrize(
    ("headers", "sent"),
    [
        ((), (("User-Agent", f"wsmon/{__version__}"),)),
        ((("Origin", "https://a"),), (("User-Agent", f"wsmon/{__version__}"), ("Origin", "https://a"))),
        ((("user-agent", "mine/1"),), (("user-agent", "mine/1"),)),
        ((("USER-AGENT", "mine/1"), ("Origin", "o")), (("USER-AGENT", "mine/1"), ("Origin", "o"))),
    ],
)
def test_request_headers_carry_a_user_agent(
    headers: tuple[tuple[str, str], ...], sent: tuple[tuple[str, str], ...]
) -> None:
    assert Module(name="m", headers=headers).request_headers == sent


def test_with_overrides_returns_a_new_module() -> None:
    base = BUILTIN_MODULES["ping"]
    changed = base.with_overrides(pings=3)
    assert (base.pings, changed.pings, changed.name) == (1, 3, "ping")


@pytest.mark.parametrize(
    ("step", "waits"),
    [
        (Step(send="x"), False),
        (Step(expect=re.compile("x")), True),
        (Step(send="x", expect_json=JsonPath.parse("result")), True),
        (Step(send="x", extract=JsonPath.parse("result")), True),
    ],
)
def test_step_waits(step: Step, waits: bool) -> None:
    assert step.waits is waits


# --- a full table --------------------------------------------------------------------------


def test_parse_a_full_module(tmp_path: Path) -> None:
    ca = tmp_path / "ca.pem"
    ca.write_text("read when a probe needs it; the config only checks it can be opened\n")
    module = parse(
        {
            "timeout": "5s",
            "ping": True,
            "pings": 5,
            "ping_spacing": "100ms",
            "headers": {"Origin": "https://example.com", "X-Api-Key": "${API_KEY}"},
            "subprotocols": ["graphql-ws"],
            "tls": {"ca_file": str(ca), "server_name": "node.example.com", "insecure_skip_verify": False},
            "proxy_url": "http://proxy.example:3128",
            "ip_protocol": "ip6",
            "ip_protocol_fallback": False,
            "max_message_size": 4096,
            "steps": [
                {"send": '{"jsonrpc":"2.0","id":1,"method":"eth_blockNumber"}', "extract": "result", "name": "block"},
                {"expect": "^ok$"},
                {"send": "bye"},
                {"expect_json": "$.params.result[0]"},
            ],
        },
        env={"API_KEY": "k3y-from-env-1234"},
    )
    assert module.timeout == 5.0
    assert (module.pings, module.ping_spacing) == (5, 0.1)
    assert module.headers == (("Origin", "https://example.com"), ("X-Api-Key", "k3y-from-env-1234"))
    assert module.subprotocols == ("graphql-ws",)
    assert module.tls == TLSOptions(ca_file=str(ca), server_name="node.example.com")
    assert module.proxy_url == "http://proxy.example:3128"
    assert (module.ip_protocol, module.ip_protocol_fallback, module.max_message_size) == ("ip6", False, 4096)
    first, second, third, fourth = module.steps
    assert first.extract is not None and first.extract.keys == ("result",) and first.value_name == "block"
    assert first.waits and first.expect is None
    assert second.send is None and second.expect is not None and second.expect.pattern == "^ok$"
    assert not third.waits
    assert fourth.expect_json is not None and fourth.expect_json.keys == ("params", "result", 0)
    assert fourth.value_name == "value"
    assert secrets.scrub("key k3y-from-env-1234") == f"key {MASK}"  # ${VAR} values are secrets


# --- secrets -------------------------------------------------------------------------------


def test_bearer_token_from_env() -> None:
    module = parse({"bearer_token": "${TOKEN}"}, env={"TOKEN": "b3arer-env-token-1"})
    assert module.headers == (("Authorization", "Bearer b3arer-env-token-1"),)
    assert "b3arer-env-token-1" not in secrets.scrub("Authorization: Bearer b3arer-env-token-1")


def test_bearer_token_file(tmp_path: Path) -> None:
    path = tmp_path / "token"
    path.write_text("b3arer-file-token-2\n")
    module = parse({"bearer_token_file": str(path)})
    assert module.headers == (("Authorization", "Bearer b3arer-file-token-2"),)
    assert secrets.scrub("b3arer-file-token-2") == MASK


def test_bearer_token_literal_is_a_secret_too() -> None:
    parse({"bearer_token": "b3arer-literal-token-3"})
    assert secrets.scrub("x b3arer-literal-token-3") == f"x {MASK}"


@pytest.mark.parametrize("source", ["env", "file", "literal"])
def test_basic_auth(tmp_path: Path, source: str) -> None:
    password = f"pa55-{source}-word"
    path = tmp_path / "password"
    path.write_text(password + "\r\n")
    auth = {
        "env": {"username": "alice", "password": "${PW}"},
        "file": {"username": "alice", "password_file": str(path)},
        "literal": {"username": "alice", "password": password},
    }[source]
    module = parse({"basic_auth": auth}, env={"PW": password})
    token = base64.b64encode(f"alice:{password}".encode()).decode()
    assert module.headers == (("Authorization", f"Basic {token}"),)
    assert secrets.scrub(f"{password} {token}") == f"{MASK} {MASK}"


def test_basic_auth_without_password() -> None:
    module = parse({"basic_auth": {"username": "alice"}})
    assert module.headers == (("Authorization", "Basic " + base64.b64encode(b"alice:").decode()),)


def test_secret_headers_from_env_are_secrets() -> None:
    module = parse({"headers": {"Cookie": "session=${SID}"}}, env={"SID": "s3ssion-id-4"})
    assert module.headers == (("Cookie", "session=s3ssion-id-4"),)
    assert "s3ssion-id-4" not in secrets.scrub("Cookie: session=s3ssion-id-4")


def test_proxy_url_credentials_are_secrets() -> None:
    module = parse({"proxy_url": "http://proxyuser:${PROXY_PW}@proxy:3128"}, env={"PROXY_PW": "pr0xy-pass-5"})
    assert module.proxy_url == "http://proxyuser:pr0xy-pass-5@proxy:3128"
    assert "pr0xy-pass-5" not in secrets.scrub("via http://proxyuser:pr0xy-pass-5@proxy:3128")


def test_env_defaults_to_the_process_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WSMON_TEST_TOKEN", "pr0cess-env-token-6")
    module = parse_module("m", {"bearer_token": "${WSMON_TEST_TOKEN}"}, "t.toml")
    assert module.headers == (("Authorization", "Bearer pr0cess-env-token-6"),)


# --- validation: one exact message per rule ---------------------------------------------------------

MODULE_KEYS = (
    "allow, basic_auth, bearer_token, bearer_token_file, headers, ip_protocol, ip_protocol_fallback, "
    "max_message_size, ping, ping_spacing, pings, proxy_url, steps, subprotocols, timeout, tls"
)
INVALID_DURATION = "use a number with a unit, e.g. 500ms, 10s, 1m30s"
INVALID_PATH = "use dotted keys and [index], e.g. result or $.params.result[0]"


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ({"bogus": 1}, f"{W}: unknown key 'bogus'; allowed keys are {MODULE_KEYS}"),
        ({"zzz": 1, "aaa": 2}, f"{W}: unknown key 'aaa'; allowed keys are {MODULE_KEYS}"),
        # timeout
        ({"timeout": "5"}, f"{W}: timeout: invalid duration '5': {INVALID_DURATION}"),
        ({"timeout": "0"}, f"{W}: timeout must be greater than 0"),
        ({"timeout": "0s"}, f"{W}: timeout must be greater than 0"),
        # pings
        ({"ping": "yes"}, f"{W}: ping must be a boolean, not a string"),
        ({"ping": 1}, f"{W}: ping must be a boolean, not an integer"),
        ({"pings": True}, f"{W}: pings must be an integer, not a boolean"),
        ({"pings": 1.0}, f"{W}: pings must be an integer, not a float"),
        ({"pings": 0}, f"{W}: pings must be between 1 and 100"),
        ({"pings": 101}, f"{W}: pings must be between 1 and 100"),
        ({"ping_spacing": "soon"}, f"{W}: ping_spacing: invalid duration 'soon': {INVALID_DURATION}"),
        # headers
        ({"headers": ["Origin: x"]}, f"{W}: headers must be a table, not an array"),
        ({"headers": {"X-Count": 3}}, f"{W}: header 'X-Count' must be a string"),
        ({"headers": {"X": "${NOPE}"}}, f"{W}: environment variable NOPE is not set; export it or use a *_file key"),
        # auth
        ({"basic_auth": {"password": "p"}}, f"{W}: basic_auth needs a username"),
        (
            {"basic_auth": {"username": "u", "pass": "p"}},
            f"{W}: basic_auth: unknown key 'pass'; allowed keys are password, password_file, username",
        ),
        (
            {"basic_auth": {"username": "u", "password": "p", "password_file": "/f"}},
            f"{W}: basic_auth: set password or password_file, not both",
        ),
        (
            {"basic_auth": {"username": "u", "password": "${PW}"}},
            f"{W}: basic_auth: environment variable PW is not set; export it or use a *_file key",
        ),
        (
            {"basic_auth": {"username": "u", "password": 5}},
            f"{W}: basic_auth: password must be a string, not an integer",
        ),
        ({"bearer_token": "t", "bearer_token_file": "/f"}, f"{W}: set bearer_token or bearer_token_file, not both"),
        ({"bearer_token": "${TOKEN}"}, f"{W}: environment variable TOKEN is not set; export it or use a *_file key"),
        ({"bearer_token": "t", "basic_auth": {"username": "u"}}, f"{W}: set basic_auth or bearer_token, not both"),
        (
            {"bearer_token_file": "/f", "basic_auth": {"username": "u"}},
            f"{W}: set basic_auth or bearer_token_file, not both",
        ),
        (
            {"basic_auth": {"username": "u"}, "headers": {"Authorization": "Basic x"}},
            f"{W}: set one of basic_auth, bearer_token or an Authorization header",
        ),
        (
            {"bearer_token": "t", "headers": {"authorization": "Bearer x"}},
            f"{W}: set one of basic_auth, bearer_token or an Authorization header",
        ),
        # subprotocols
        ({"subprotocols": "graphql-ws"}, f"{W}: subprotocols must be an array, not a string"),
        ({"subprotocols": ["a", ""]}, f"{W}: subprotocols must be a list of non-empty strings"),
        ({"subprotocols": ["a", 1]}, f"{W}: subprotocols must be a list of non-empty strings"),
        # tls
        ({"tls": "strict"}, f"{W}: tls must be a table, not a string"),
        (
            {"tls": {"verify": False}},
            f"{W}: tls: unknown key 'verify'; allowed keys are ca_file, cert_file, insecure_skip_verify, "
            "key_file, server_name",
        ),
        ({"tls": {"ca_file": 1}}, f"{W}: tls: ca_file must be a string, not an integer"),
        ({"tls": {"insecure_skip_verify": "yes"}}, f"{W}: tls: insecure_skip_verify must be a boolean, not a string"),
        ({"tls": {"cert_file": "c.pem"}}, f"{W}: tls needs both cert_file and key_file for a client certificate"),
        ({"tls": {"key_file": "k.pem"}}, f"{W}: tls needs both cert_file and key_file for a client certificate"),
        ({"tls": {"ca_file": "/nonexistent/ca.pem"}}, f"{W}: tls: cannot read ca_file: No such file or directory"),
        # proxy, ip protocol, sizes
        ({"proxy_url": "socks5://p:1080"}, f"{W}: proxy_url must be an http:// URL of an HTTP CONNECT proxy"),
        ({"proxy_url": "https://p:3128"}, f"{W}: proxy_url must be an http:// URL of an HTTP CONNECT proxy"),
        ({"ip_protocol": "ipv4"}, f"{W}: ip_protocol must be auto, ip4 or ip6, not 'ipv4'"),
        ({"ip_protocol": 4}, f"{W}: ip_protocol must be a string, not an integer"),
        ({"ip_protocol_fallback": "no"}, f"{W}: ip_protocol_fallback must be a boolean, not a string"),
        ({"max_message_size": 0}, f"{W}: max_message_size must be at least 1 byte"),
        ({"max_message_size": "1MiB"}, f"{W}: max_message_size must be an integer, not a string"),
        # steps
        ({"steps": {"send": "x"}}, f"{W}: steps must be an array, not a table"),
        ({"steps": ["x"]}, f"{W}: step 1: a step must be a table with send/expect keys"),
        ({"steps": [{}]}, f"{W}: step 1: a step needs send, expect, expect_json or extract"),
        ({"steps": [{"name": "n"}]}, f"{W}: step 1: a step needs send, expect, expect_json or extract"),
        (
            {"steps": [{"send": "a"}, {"sand": "b"}]},
            f"{W}: step 2: unknown key 'sand'; allowed keys are expect, expect_json, extract, name, send",
        ),
        ({"steps": [{"send": 1}]}, f"{W}: step 1: send must be a string, not an integer"),
        (
            {"steps": [{"expect": "("}]},
            f"{W}: step 1: invalid regular expression '(': missing ), unterminated subpattern at position 0",
        ),
        ({"steps": [{"extract": "a..b"}]}, f"{W}: step 1: invalid JSON path 'a..b': {INVALID_PATH}"),
        ({"steps": [{"expect_json": ""}]}, f"{W}: step 1: invalid JSON path '': {INVALID_PATH}"),
        ({"steps": [{"extract": "result", "name": "1x"}]}, f"{W}: step 1: name '1x' must be a label-safe identifier"),
        (
            {"steps": [{"extract": "result", "name": "block-height"}]},
            f"{W}: step 1: name 'block-height' must be a label-safe identifier",
        ),
    ],
)
def test_validation_errors(table: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse(table)
    assert str(caught.value) == message


@pytest.mark.parametrize("key", ["timeout", "ping_spacing"])
def test_duration_of_the_wrong_type(key: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse({key: 5})
    assert str(caught.value) == f"{W}: {key} must be a string, not an integer"


def test_missing_secret_file(tmp_path: Path) -> None:
    path = tmp_path / "absent"
    with pytest.raises(ConfigError) as caught:
        parse({"bearer_token_file": str(path)})
    assert str(caught.value) == f"{W}: cannot read secret file {path}: No such file or directory"


def test_empty_secret_file(tmp_path: Path) -> None:
    path = tmp_path / "empty"
    path.write_text("\n")
    with pytest.raises(ConfigError) as caught:
        parse({"basic_auth": {"username": "u", "password_file": str(path)}})
    assert str(caught.value) == f"{W}: basic_auth: secret file {path} is empty"


def test_config_error_is_a_value_error() -> None:
    assert issubclass(ConfigError, ValueError)


@pytest.mark.parametrize(
    "table",
    [
        {"basic_auth": "alice:s3cr3t-in-wrong-place"},
        {"bearer_token": ["s3cr3t-in-wrong-place"]},
        {"headers": "Authorization: Bearer s3cr3t-in-wrong-place"},
    ],
)
def test_type_errors_do_not_quote_secrets(table: dict[str, Any]) -> None:
    with pytest.raises(ConfigError) as caught:
        parse(table)
    assert "s3cr3t-in-wrong-place" not in str(caught.value)


# --- who /probe may use a module with: credentials and allow ---------------------------------


@pytest.mark.parametrize(
    ("table", "env", "credentials"),
    [
        ({}, {}, False),
        ({"headers": {"Origin": "https://app.example", "User-Agent": "x/1"}}, {}, False),
        ({"bearer_token": "t0ken-for-credentials-1"}, {}, True),
        ({"basic_auth": {"username": "u", "password": "p"}}, {}, True),
        ({"headers": {"Authorization": "Bearer literal-t0ken-2"}}, {}, True),
        ({"headers": {"cookie": "session=abc"}}, {}, True),
        ({"headers": {"X-Api-Key": "literal"}}, {}, True),
        ({"headers": {"X-Auth-Token": "literal"}}, {}, True),
        ({"headers": {"X-Tenant": "${TENANT}"}}, {"TENANT": "from-the-environment"}, True),  # env: a secret
    ],
)
def test_modules_with_credentials_are_marked(table: dict[str, Any], env: dict[str, str], credentials: bool) -> None:
    assert parse(table, env=env).carries_credentials is credentials


def test_allow_lists_url_patterns() -> None:
    module = parse({"bearer_token": "t0ken-for-allow-3", "allow": ["wss://*.infura.io/**", "ws://10.0.0.1:8546/"]})
    assert module.allow == ("wss://*.infura.io/**", "ws://10.0.0.1:8546/")
    assert parse({}).allow is None
    assert parse({"allow": []}).allow == ()  # only the module's configured targets


@pytest.mark.parametrize(
    ("allow", "message"),
    [
        ("wss://*.infura.io/*", f"{W}: allow must be an array, not a string"),
        ([1], f"{W}: allow entry 1 must be a string (a ws:// or wss:// URL pattern)"),
        (["node1"], f"{W}: allow entry 1: not a URL pattern: write ws://host/path or wss://host/path"),
        (["https://*.infura.io/*"], f"{W}: allow entry 1: not a URL pattern"),
        (["wss://a:s3cr3t-in-pattern@h/*"], f"{W}: allow entry 1: not a URL pattern"),
    ],
)
def test_allow_must_list_url_patterns(allow: Any, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse({"allow": allow})
    assert str(caught.value).startswith(message)
    assert "s3cr3t-in-pattern" not in str(caught.value)
