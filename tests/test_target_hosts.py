"""Target URLs pass one door (``parse_target``): no control characters or spaces, and a host
that is a DNS name (after IDNA), an IPv4 address or a bracketed IPv6 address, checked before
anything matches or connects, wherever the URL came from (/probe, config, API, ``check``)."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import pytest

from tests import servers
from tests.exporter import running_exporter
from wsmon.config.file import Settings, load_config, parse_config, parse_target_table
from wsmon.config.web import WebConfig
from wsmon.errors import ConfigError, TargetError
from wsmon.probe.module import BUILTIN_MODULES
from wsmon.ws.url import parse_target

CANARY = "HOSTCANARY-9b8a7c6d5e"

REFUSED = [
    # The door of the review: "%00" in /probe's query string arrives as a NUL, the allowlist
    # saw "….example.com" and the resolver stopped at the NUL (127.0.0.1).
    "ws://127.0.0.1\x00.example.com:9/ws",
    "ws://127.0.0.1%00.example.com:9/ws",  # percent-encoded hosts are not decoded: refused
    "ws://127.0.0.1 .example.com:9/ws",  # glibc's inet_aton stops at a space
    "ws://127.0.0.1\t.example.com/ws",  # urllib would silently drop the tab
    "ws://127.0.0.1\n.example.com/ws",
    "ws://h.example.com\x7f/ws",
    "ws://h.example.com\x85/ws",  # a C1 control
    "ws://h\u200b.example.com/ws",  # zero-width space
    "ws://h\u00a0.example.com/ws",  # no-break space
    "ws://h.example.com/path with space",
    "ws://h.example.com/\x00",
    # Numbers resolvers read as IPv4 addresses that a pattern would not recognise.
    "ws://127.1/",
    "ws://0x7f.0.0.1/",
    "ws://2130706433/",
    "ws://127.0.0.01/",
    "ws://256.0.0.1/",
    # Not a DNS name.
    "ws://-h.example.com/",
    "ws://h-.example.com/",
    "ws://a..example.com/",
    "ws://" + "a" * 64 + ".example.com/",
    "ws://" + ".".join(["a" * 60] * 5) + "/",  # 304 characters
    "ws://h.exa!mple.com/",
    "ws://h.example.com\\@evil.test/",  # browsers and urllib disagree on the host
    "ws://\u2100.example.com/",  # IDNA: disallowed
    "ws://xn--a.\u00e9/",
    # IPv6.
    "ws://[::1%25lo]/",
    "ws://[fe80::1%25eth0]:80/",
    "ws://[12345::1]/",
    "ws://[v1.x]/",
]


@pytest.mark.parametrize("url", REFUSED)
def test_invalid_hosts_and_control_characters_are_refused(url: str) -> None:
    with pytest.raises(TargetError) as info:
        parse_target(url)
    message = str(info.value)
    assert "\n" not in message and "\x00" not in message
    assert "example.com" not in message and "evil" not in message  # the URL is never quoted


@pytest.mark.parametrize(
    ("url", "host", "canonical"),
    [
        ("ws://H.Example.COM/x", "h.example.com", "ws://h.example.com:80/x"),
        ("wss://h.example.com./x?k=v", "h.example.com", "wss://h.example.com:443/x?k=v"),
        ("ws://B\u00fccher.example/", "xn--bcher-kva.example", "ws://xn--bcher-kva.example:80/"),
        ("ws://h\u3002example.com/", "h.example.com", "ws://h.example.com:80/"),  # ideographic full stop
        ("ws://xn--bcher-kva.example/", "xn--bcher-kva.example", "ws://xn--bcher-kva.example:80/"),
        ("ws://my_node:8546/", "my_node", "ws://my_node:8546/"),  # container service names
        ("ws://127.0.0.1:9/ws", "127.0.0.1", "ws://127.0.0.1:9/ws"),
        ("ws://[::1]:9/", "::1", "ws://[::1]:9/"),
        ("ws://[0:0::1]/", "::1", "ws://[::1]:80/"),
        ("ws://u:p@h.example.com/x", "h.example.com", "ws://h.example.com:80/x"),  # no userinfo
        ("  ws://h.example.com/  ", "h.example.com", "ws://h.example.com:80/"),
        ("ws://" + "a" * 63 + ".example.com/", "a" * 63 + ".example.com", None),
    ],
)
def test_hosts_are_normalised(url: str, host: str, canonical: str | None) -> None:
    target = parse_target(url)
    assert target.host == host
    if canonical is not None:
        assert target.canonical == canonical
    assert target.host_header.startswith(f"[{host}]" if ":" in host else host)


def test_the_normalised_host_is_what_is_connected_to_and_sent() -> None:
    target = parse_target("wss://B\u00fccher.Example:8443/ws")
    assert (target.host, target.host_header, target.is_ip) == (
        "xn--bcher-kva.example",
        "xn--bcher-kva.example:8443",
        False,
    )
    assert parse_target("ws://127.0.0.1/").is_ip and parse_target("ws://[::1]/").is_ip


async def test_probe_refuses_a_nul_host_before_the_allowlist_can_be_fooled() -> None:
    """``ws://127.0.0.1%00.example.com:PORT/…`` matched ``ws://*.example.com:PORT/*`` and
    connected to 127.0.0.1; now it is a 400 and nothing connects."""

    async def count(peer: servers.Peer) -> None:
        connections.append(1)

    connections: list[int] = []
    async with servers.raw_server(count) as server:
        port = server.port
        config = parse_config({"web": {"probe_allow": [f"ws://*.example.com:{port}/*"]}}, "t.toml")
        async with running_exporter(config) as exporter:
            for host in ("127.0.0.1\x00.example.com", "127.0.0.1 .example.com", "127.0.0.1\t.example.com"):
                response = await exporter.client.get("/probe", params={"target": f"ws://{host}:{port}/{CANARY}"})
                assert response.status_code in (400, 403), host
                assert CANARY not in response.text
            allowed = await exporter.client.get("/probe", params={"target": f"ws://a.example.com:{port}/x"})
            assert allowed.status_code == 200  # the rule itself still works (a.example.com does not resolve)
        await asyncio.sleep(50 * servers.MS)
    assert connections == []


def test_config_and_api_targets_pass_the_same_door(tmp_path: Path) -> None:
    path = tmp_path / "t.toml"
    path.write_text('[[targets]]\nname = "t"\nurl = "ws://127.0.0.1\\u0000.example.com:9/ws"\n')
    with pytest.raises(ConfigError) as info:
        load_config(path, env={})
    assert str(info.value).startswith(f"{path}: target 't': the target URL holds a control character")
    # What the dashboard's "add a target" (the targets API) and the state file go through.
    table = {"name": "t", "url": f"ws://h.example.com%00.evil.test/{CANARY}"}
    with pytest.raises(ConfigError) as info:
        parse_target_table(table, 1, "dashboard", Settings(), BUILTIN_MODULES, {})
    assert "not a valid host name" in str(info.value) and CANARY not in str(info.value)


async def test_check_refuses_a_nul_host() -> None:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "wsmon",
        "check",
        f"ws://127.0.0.1\x01.example.com:9/{CANARY}",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    output, _ = await process.communicate()
    assert process.returncode == 2
    assert output.decode() == (
        "wsmon: error: the target URL holds a control character or a space; percent-encode it (%20) or remove it\n"
    )


@pytest.mark.parametrize(
    ("url", "allowed"),
    [
        ("ws://A.Example.COM./x", True),  # the raw string's trailing dot would miss the rule
        ("ws://a\uff0eexample\u3002com/x", True),  # full-width stops: IDNA maps them to "."
        ("ws://user:pw@a.example.com/x", True),  # userinfo is not where the probe connects
        ("ws://a.example.com:8080/x", False),
        ("ws://example.com/x", False),
    ],
)
def test_the_canonical_form_is_what_an_allowlist_matches(url: str, allowed: bool) -> None:
    """What /probe's allowlist should be given: the host that is connected to, written out."""
    rules = WebConfig(probe_allow=("ws://*.example.com/*",))
    assert rules.probe_allowed(parse_target(url).canonical, False) is allowed
