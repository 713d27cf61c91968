"""Probe modules: how a target is probed (pings, headers, auth, TLS, message steps).

A module is an immutable value. Two are built in: ``ping`` (connect and one ping/pong, the
default) and ``connect`` (connect only, for servers without ping support). Users add their own
under ``[modules.<name>]`` in the config file (``wsmon.config.modules`` parses them).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Literal

from wsmon import __version__
from wsmon.probe.jsonpath import JsonPath
from wsmon.ws.tls import TLSOptions

__all__ = ["BUILTIN_MODULES", "DEFAULT_MAX_MESSAGE_SIZE", "IPProtocol", "Module", "Step"]

IPProtocol = Literal["auto", "ip4", "ip6"]

DEFAULT_MAX_MESSAGE_SIZE = 1 << 20


@dataclass(frozen=True, slots=True)
class Step:
    """Send a text message and/or wait for the next data message and check it."""

    send: str | None = None
    expect: re.Pattern[str] | None = None  # regex searched in the message text
    expect_json: JsonPath | None = None  # this path must exist in the JSON message
    extract: JsonPath | None = None  # a number (or "0x…" hex string) to export
    value_name: str = "value"

    @property
    def waits(self) -> bool:
        return self.expect is not None or self.expect_json is not None or self.extract is not None


@dataclass(frozen=True, slots=True)
class Module:
    name: str
    # Timeouts: None means "the exporter's --timeout".
    timeout: float | None = None
    # Ping/pong
    ping: bool = True
    pings: int = 1
    ping_spacing: float = 0.0  # pause between the pings of one probe
    # Opening handshake
    headers: tuple[tuple[str, str], ...] = ()
    subprotocols: tuple[str, ...] = ()
    tls: TLSOptions = field(default_factory=TLSOptions)
    proxy_url: str | None = None  # explicit HTTP CONNECT proxy; *_proxy env vars are ignored
    ip_protocol: IPProtocol = "auto"
    ip_protocol_fallback: bool = True
    # Messages
    steps: tuple[Step, ...] = ()
    max_message_size: int = DEFAULT_MAX_MESSAGE_SIZE
    # Where /probe may use it: with `allow` set, or with credentials (auth, secret headers), only
    # with the targets the operator named for the module: its configured targets, these patterns.
    allow: tuple[str, ...] | None = None
    carries_credentials: bool = False

    # Computed once: the headers sent, with `User-Agent: wsmon/<version>` unless configured.
    request_headers: tuple[tuple[str, str], ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        has_agent = any(k.lower() == "user-agent" for k, _ in self.headers)
        agent = () if has_agent else (("User-Agent", f"wsmon/{__version__}"),)
        object.__setattr__(self, "request_headers", (*agent, *self.headers))

    def with_overrides(self, **changes: Any) -> Module:
        return replace(self, **changes)


BUILTIN_MODULES: Mapping[str, Module] = {
    "ping": Module(name="ping"),
    "connect": Module(name="connect", ping=False),
}
