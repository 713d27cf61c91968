"""The config file (wsmon.config): one-line errors for every rule, and what a valid file means."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from wsmon.config.file import Config, Mode, Settings, Subscription, Target, load_config
from wsmon.errors import ConfigError
from wsmon.probe.jsonpath import JsonPath
from wsmon.probe.module import BUILTIN_MODULES, Module

TESTDATA = Path(__file__).parent / "testdata"

# Every tests/testdata/invalid-*.toml → its exact message, after the "<path>: " prefix.
INVALID: dict[str, str] = {
    "invalid-unknown-top-key.toml": ("unknown key 'setings'; allowed keys are modules, push, settings, targets, web"),
    "invalid-unknown-settings-key.toml": (
        "[settings]: unknown key 'intervall'; allowed keys are interval, max_in_flight, ping_interval, "
        "reconnect_backoff, reconnect_backoff_max, series, timeout, window"
    ),
    "invalid-unknown-target-key.toml": (
        "target 'node': unknown key 'intervall'; allowed keys are interval, labels, mode, module, name, "
        "series, subscribe, timeout, url, url_file"
    ),
    "invalid-bad-duration.toml": (
        "target 'node': interval: invalid duration '15': use a number with a unit, e.g. 500ms, 10s, 1m30s"
    ),
    "invalid-duplicate-target.toml": "target 'node' is defined twice; target names must be unique",
    "invalid-unknown-module.toml": (
        "target 'node': unknown module 'ehh'; define [modules.ehh] or use: connect, eth, ping"
    ),
    "invalid-timeout-not-shorter-than-interval.toml": (
        "target 'node': timeout 10s is not shorter than interval 10s; lower the timeout or raise the interval"
    ),
    "invalid-missing-env-var.toml": (
        "target 'node': environment variable WSMON_TEST_UNSET_VAR is not set; export it or use a *_file key"
    ),
    "invalid-non-ws-url.toml": ("target 'node': unsupported scheme https://: the target must be a ws:// or wss:// URL"),
    "invalid-bad-mode.toml": "target 'node': mode must be probe, persistent or scrape, not 'stream'",
    "invalid-missing-name.toml": 'target #1 has no name; give it name = "…" (it becomes the target label)',
    "invalid-missing-url.toml": "target 'node': set url or url_file (one of them)",
    "invalid-url-and-url-file.toml": "target 'node': set url or url_file (one of them)",
    "invalid-reserved-label.toml": "target 'node': label 'target' is used by wsmon itself; choose another name",
    "invalid-label-name.toml": "target 'node': label name 'chain-id' is not valid; use letters, digits and _",
    "invalid-subscribe-without-persistent.toml": "target 'node': subscribe needs mode = \"persistent\"",
    "invalid-subscribe-without-send.toml": ("target 'node': subscribe needs send, the message that starts the stream"),
    "invalid-backoff-above-max.toml": "[settings]: reconnect_backoff must not exceed reconnect_backoff_max",
    "invalid-not-toml.toml": "not valid TOML: Invalid value (at line 2, column 8)",
    "invalid-targets-not-array.toml": "targets must be an array of tables: write [[targets]] for each",
    "invalid-target-name-chars.toml": (
        "target 'my node': names may hold letters, digits and _ . : - (and start with a letter or digit)"
    ),
    "invalid-builtin-module-name.toml": "module 'ping' is built in; give yours another name",
    # Not UTF-8 (a Latin-1 "café" in a comment): TOML files are UTF-8, and the user should hear so.
    "invalid-not-utf8.toml": "not valid TOML: the file must be UTF-8 text",
    # tls and credentials: one parser each (wsmon.config.tls, wsmon.config.credentials) for
    # [modules.<name>] and [[push]], so the same rule gives the same message in both.
    "invalid-module-tls-cert-without-key.toml": (
        "module 'mtls': tls needs both cert_file and key_file for a client certificate"
    ),
    "invalid-module-tls-missing-file.toml": "module 'private-ca': tls: cannot read ca_file: No such file or directory",
    "invalid-module-tls-unknown-key.toml": (
        "module 'strict': tls: unknown key 'verify'; allowed keys are ca_file, cert_file, insecure_skip_verify, "
        "key_file, server_name"
    ),
    "invalid-module-auth-basic-and-bearer.toml": "module 'api': set basic_auth or bearer_token, not both",
    "invalid-module-auth-and-header.toml": (
        "module 'api': set one of basic_auth, bearer_token or an Authorization header"
    ),
    "invalid-push-tls-cert-without-key.toml": "push #1: tls needs both cert_file and key_file for a client certificate",
    "invalid-push-tls-not-string.toml": "push #1: tls: ca_file must be a string, not an integer",
    "invalid-push-tls-missing-file.toml": "push #1: tls: cannot read ca_file: No such file or directory",
    "invalid-push-tls-unknown-key.toml": (
        "push #1: tls: unknown key 'verify'; allowed keys are ca_file, cert_file, insecure_skip_verify, "
        "key_file, server_name"
    ),
    "invalid-push-tls-not-table.toml": "push #1: tls must be a table, not a string",
    "invalid-push-auth-basic-and-bearer.toml": "push #1: set basic_auth or bearer_token_file, not both",
    "invalid-push-auth-bearer-and-file.toml": "push #1: set bearer_token or bearer_token_file, not both",
    "invalid-push-basic-auth-without-username.toml": "push #1: basic_auth needs a username",
    "invalid-push-basic-auth-not-table.toml": "push #1: basic_auth must be a table, not a string",
    "invalid-push-auth-missing-secret-file.toml": (
        "push #1: cannot read secret file /nonexistent/wsmon-test/vm-token: No such file or directory"
    ),
    "invalid-web-tls-missing-file.toml": "[web]: cannot read tls_cert_file: No such file or directory",
}

NOT_UTF8 = b'# caf\xe9: Latin-1, not UTF-8\n[settings]\ninterval = "30s"\n'


def _cases() -> list[str]:
    return sorted(INVALID)


def test_every_invalid_file_has_a_message() -> None:
    on_disk = {p.name for p in TESTDATA.glob("invalid-*.toml")}
    assert on_disk == set(INVALID)


def test_not_utf8_file_is_really_not_utf8() -> None:
    # The file is bytes, not text: keep it so (editors like to "fix" it).
    raw = (TESTDATA / "invalid-not-utf8.toml").read_bytes()
    assert raw == NOT_UTF8
    with pytest.raises(UnicodeDecodeError):
        raw.decode()


@pytest.mark.parametrize("name", _cases())
def test_invalid_file_exact_message(name: str) -> None:
    path = TESTDATA / name
    with pytest.raises(ConfigError) as info:
        load_config(path, env={})
    assert str(info.value) == f"{path}: {INVALID[name]}"


@pytest.mark.parametrize("name", _cases())
def test_invalid_file_message_is_one_line(name: str) -> None:
    path = TESTDATA / name
    with pytest.raises(ConfigError) as info:
        load_config(path, env={})
    message = str(info.value)
    assert message.startswith(f"{path}: ")
    assert "\n" not in message and "\r" not in message
    assert message == message.strip()


@pytest.mark.parametrize("name", sorted(INVALID))
def test_invalid_file_rejected_whatever_the_environment(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    # env=None reads os.environ; the files must not depend on what the developer has exported.
    monkeypatch.delenv("WSMON_TEST_UNSET_VAR", raising=False)
    with pytest.raises(ConfigError):
        load_config(TESTDATA / name)


def test_missing_file() -> None:
    path = TESTDATA / "does-not-exist.toml"
    with pytest.raises(ConfigError) as info:
        load_config(path, env={})
    assert str(info.value) == f"{path}: no such file; pass --config with the path of your targets.toml"


# --- valid configs ---------------------------------------------------------------------------

# Distinctive values: ${VAR} values and URL paths are registered as process-wide secrets.
TOKEN = "wsmon-test-config-token-7f3a91"
FILE_TOKEN = "wsmon-test-config-file-token-c04e2d"

FULL = """
[settings]
interval = "20s"
timeout = "8s"
ping_interval = "2s"
window = "10m"
max_in_flight = 32
reconnect_backoff = "250ms"
reconnect_backoff_max = "1m"

[modules.fast]
timeout = "3s"
pings = 3

[modules.slow]
timeout = "15s"
ping = false

[[targets]]
name = "defaults"
url = "ws://127.0.0.1:9/"

[[targets]]
name = "node-1.eu:a_b"
url = "wss://node.example.com/${WSMON_TEST_CFG_TOKEN}"
module = "fast"
interval = "1m"
labels = { region = "eu", chain = "eth" }

[[targets]]
name = "slow-module"
url = "ws://127.0.0.1:9/"
module = "slow"

[[targets]]
name = "own-timeout"
url = "ws://127.0.0.1:9/"
module = "fast"
interval = "10s"
timeout = "5s"

[[targets]]
name = "stream"
url = "wss://stream.example.com/"
mode = "persistent"
module = "connect"
labels = { chain = "eth" }
[targets.subscribe]
send = '{"method":"eth_subscribe","params":["newHeads"]}'
extract = "params.result.number"
name = "block"

[[targets]]
name = "stream-plain"
url = "ws://127.0.0.1:9/"
mode = "persistent"
timeout = "1m"
subscribe = { send = "hello" }
"""


@pytest.fixture
def full(tmp_path: Path) -> Config:
    path = tmp_path / "targets.toml"
    path.write_text(FULL)
    return load_config(path, env={"WSMON_TEST_CFG_TOKEN": TOKEN})


def test_full_config_settings(full: Config) -> None:
    assert full.settings == Settings(
        interval=20.0,
        timeout=8.0,
        ping_interval=2.0,
        window=600.0,
        max_in_flight=32,
        reconnect_backoff=0.25,
        reconnect_backoff_max=60.0,
    )


def test_full_config_modules(full: Config) -> None:
    assert set(full.modules) == {"ping", "connect", "fast", "slow"}
    assert full.modules["ping"] == BUILTIN_MODULES["ping"]
    assert full.modules["connect"] == BUILTIN_MODULES["connect"]
    assert full.modules["fast"] == Module(name="fast", timeout=3.0, pings=3)
    assert full.modules["slow"] == Module(name="slow", timeout=15.0, ping=False)


def test_full_config_target_names_in_file_order(full: Config) -> None:
    names = [t.name for t in full.targets]
    assert names == ["defaults", "node-1.eu:a_b", "slow-module", "own-timeout", "stream", "stream-plain"]


def test_full_config_targets(full: Config) -> None:
    m = full.modules
    expected = {
        # Everything from [settings] and the default module.
        "defaults": Target(name="defaults", url="ws://127.0.0.1:9/", module=m["ping"], interval=20.0, timeout=8.0),
        # ${VAR} expanded; labels sorted by name; module timeout below [settings] timeout wins.
        "node-1.eu:a_b": Target(
            name="node-1.eu:a_b",
            url=f"wss://node.example.com/{TOKEN}",
            module=m["fast"],
            interval=60.0,
            timeout=3.0,
            labels=(("chain", "eth"), ("region", "eu")),
        ),
        # A module timeout above [settings] timeout is capped to it (the smaller of the two).
        "slow-module": Target(
            name="slow-module", url="ws://127.0.0.1:9/", module=m["slow"], interval=20.0, timeout=8.0
        ),
        # The target's own timeout beats its module's, here a larger one.
        "own-timeout": Target(
            name="own-timeout", url="ws://127.0.0.1:9/", module=m["fast"], interval=10.0, timeout=5.0
        ),
        "stream": Target(
            name="stream",
            url="wss://stream.example.com/",
            module=m["connect"],
            mode=Mode.PERSISTENT,
            interval=20.0,
            timeout=8.0,
            labels=(("chain", "eth"),),
            subscribe=Subscription(
                send='{"method":"eth_subscribe","params":["newHeads"]}',
                extract=JsonPath.parse("params.result.number"),
                name="block",
            ),
        ),
        # Persistent: a timeout longer than the interval is fine (the interval is not used).
        "stream-plain": Target(
            name="stream-plain",
            url="ws://127.0.0.1:9/",
            module=m["ping"],
            mode=Mode.PERSISTENT,
            interval=20.0,
            timeout=60.0,
            subscribe=Subscription(send="hello", extract=None, name="value"),
        ),
    }
    assert {t.name: t for t in full.targets} == expected


def test_config_target_lookup(full: Config) -> None:
    target = full.target("stream")
    assert target is not None and target.name == "stream" and target.mode == "persistent"
    assert full.target("node-1.eu:a_b") is full.targets[1]
    assert full.target("nope") is None
    assert full.target("") is None


def test_url_never_in_repr(full: Config) -> None:
    target = full.target("node-1.eu:a_b")
    assert target is not None
    assert TOKEN not in repr(target)
    assert TOKEN not in target.redacted_url
    assert target.redacted_url == "wss://node.example.com/****"


def test_defaults() -> None:
    config = Config()
    assert config.settings == Settings()
    assert Settings() == Settings(
        interval=30.0,
        timeout=10.0,
        ping_interval=1.0,
        window=300.0,
        max_in_flight=256,
        reconnect_backoff=0.5,
        reconnect_backoff_max=30.0,
    )
    assert dict(config.modules) == dict(BUILTIN_MODULES)
    assert config.targets == ()


def test_empty_file_is_a_valid_config(tmp_path: Path) -> None:
    path = tmp_path / "empty.toml"
    path.write_text("")
    assert load_config(path, env={}) == Config()


def _load(
    tmp_path: Path, text: str, env: Mapping[str, str] | None = None, overrides: Mapping[str, Any] | None = None
) -> Config:
    path = tmp_path / "t.toml"
    path.write_text(text)
    return load_config(path, env=env, overrides=overrides)


MINIMAL_TARGET = '[[targets]]\nname = "t"\nurl = "ws://127.0.0.1:9/"\n'


@pytest.mark.parametrize(
    ("settings", "module", "target", "expected"),
    [
        # (settings timeout, module timeout, target timeout) → the target's timeout; interval 1m
        (None, None, None, 10.0),  # the default
        ("4s", None, None, 4.0),  # [settings]
        (None, "3s", None, 3.0),  # module below the default
        (None, "20s", None, 10.0),  # module above [settings] (here the default): the smaller
        ("30s", "20s", None, 20.0),
        ("2s", "20s", None, 2.0),
        ("2s", "20s", "7s", 7.0),  # the target's own beats both
        ("30s", "3s", "45s", 45.0),  # even when larger than both
        (None, None, "500ms", 0.5),
    ],
)
def test_timeout_precedence(
    tmp_path: Path, settings: str | None, module: str | None, target: str | None, expected: float
) -> None:
    text = ""
    if settings is not None:
        text += f'[settings]\ntimeout = "{settings}"\n'
    text += "[modules.m]\n" + (f'timeout = "{module}"\n' if module is not None else "")
    text += '[[targets]]\nname = "t"\nurl = "ws://127.0.0.1:9/"\nmodule = "m"\ninterval = "1m"\n'
    if target is not None:
        text += f'timeout = "{target}"\n'
    config = _load(tmp_path, text, env={})
    assert config.targets[0].timeout == expected


def test_env_expansion(tmp_path: Path) -> None:
    text = '[[targets]]\nname = "t"\nurl = "wss://${WSMON_TEST_CFG_HOST}:8546/${WSMON_TEST_CFG_TOKEN}?x=1"\n'
    env = {"WSMON_TEST_CFG_HOST": "wsmon-cfg-host.example.net", "WSMON_TEST_CFG_TOKEN": TOKEN}
    config = _load(tmp_path, text, env=env)
    assert config.targets[0].url == f"wss://wsmon-cfg-host.example.net:8546/{TOKEN}?x=1"


def test_env_expansion_reads_os_environ_without_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WSMON_TEST_CFG_TOKEN", TOKEN)
    config = _load(tmp_path, '[[targets]]\nname = "t"\nurl = "wss://h.example/${WSMON_TEST_CFG_TOKEN}"\n')
    assert config.targets[0].url == f"wss://h.example/{TOKEN}"


def test_env_given_is_the_only_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WSMON_TEST_CFG_TOKEN", TOKEN)
    with pytest.raises(ConfigError, match="environment variable WSMON_TEST_CFG_TOKEN is not set"):
        _load(tmp_path, '[[targets]]\nname = "t"\nurl = "wss://h.example/${WSMON_TEST_CFG_TOKEN}"\n', env={})


@pytest.mark.parametrize("content", [f"wss://file.example/{FILE_TOKEN}\n", f"wss://file.example/{FILE_TOKEN}\r\n"])
def test_url_file(tmp_path: Path, content: str) -> None:
    url_file = tmp_path / "url"
    url_file.write_bytes(content.encode())
    config = _load(tmp_path, f'[[targets]]\nname = "t"\nurl_file = "{url_file}"\n', env={})
    assert config.targets[0].url == f"wss://file.example/{FILE_TOKEN}"


def test_url_file_missing(tmp_path: Path) -> None:
    missing = tmp_path / "nope"
    path = tmp_path / "t.toml"
    path.write_text(f'[[targets]]\nname = "t"\nurl_file = "{missing}"\n')
    with pytest.raises(ConfigError) as info:
        load_config(path, env={})
    assert str(info.value) == f"{path}: target 't': cannot read secret file {missing}: No such file or directory"


def test_overrides_beat_settings(tmp_path: Path) -> None:
    text = '[settings]\ntimeout = "5s"\nping_interval = "3s"\ninterval = "1m"\n' + MINIMAL_TARGET
    config = _load(tmp_path, text, env={}, overrides={"timeout": 2.0, "ping_interval": 0.5})
    assert config.settings.timeout == 2.0
    assert config.settings.ping_interval == 0.5
    assert config.settings.interval == 60.0  # not overridden: from the file
    assert config.targets[0].timeout == 2.0


def test_overrides_without_settings_table(tmp_path: Path) -> None:
    config = _load(tmp_path, MINIMAL_TARGET, env={}, overrides={"timeout": 1.5})
    assert config.settings == Settings(timeout=1.5)
    assert config.targets[0].timeout == 1.5


def test_override_can_break_timeout_below_interval(tmp_path: Path) -> None:
    text = '[settings]\ninterval = "5s"\ntimeout = "2s"\n' + MINIMAL_TARGET
    with pytest.raises(ConfigError, match="timeout 6s is not shorter than interval 5s"):
        _load(tmp_path, text, env={}, overrides={"timeout": 6.0})


def test_labels_are_sorted_tuples(tmp_path: Path) -> None:
    config = _load(tmp_path, MINIMAL_TARGET + 'labels = { zone = "b", _x = "1", app = "a" }\n', env={})
    assert config.targets[0].labels == (("_x", "1"), ("app", "a"), ("zone", "b"))
