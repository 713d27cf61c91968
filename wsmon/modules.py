"""Probe modules: how a target is probed (pings, headers, auth, TLS, message steps).

A module is an immutable value. Two are built in: ``ping`` (connect and one ping/pong, the
default) and ``connect`` (connect only, for servers without ping support). Users add their own
under ``[modules.<name>]`` in the config file; ``parse_module`` validates one such table.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Literal

from wsmon import __version__
from wsmon.credentials import basic_authorization, secret
from wsmon.errors import ConfigError
from wsmon.jsonpath import JsonPath
from wsmon.redact import secrets
from wsmon.secret_sources import expand_env
from wsmon.validate import LABEL_NAME, check_keys, duration, typed

__all__ = ["BUILTIN_MODULES", "Module", "Step", "TLSOptions", "parse_module"]

IPProtocol = Literal["auto", "ip4", "ip6"]

DEFAULT_MAX_MESSAGE_SIZE = 1 << 20


@dataclass(frozen=True, slots=True)
class TLSOptions:
    ca_file: str | None = None
    cert_file: str | None = None
    key_file: str | None = None
    server_name: str | None = None
    insecure_skip_verify: bool = False


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

# --- parsing ---------------------------------------------------------------------------

_MODULE_KEYS = {
    "timeout",
    "ping",
    "pings",
    "ping_spacing",
    "headers",
    "subprotocols",
    "tls",
    "proxy_url",
    "ip_protocol",
    "ip_protocol_fallback",
    "steps",
    "max_message_size",
    "basic_auth",
    "bearer_token",
    "bearer_token_file",
}
_TLS_KEYS = {"ca_file", "cert_file", "key_file", "server_name", "insecure_skip_verify"}
_STEP_KEYS = {"send", "expect", "expect_json", "extract", "name"}


def _regex(text: str, where: str) -> re.Pattern[str]:
    try:
        return re.compile(text)
    except re.error as exc:
        raise ConfigError(f"{where}: invalid regular expression {text!r}: {exc}") from None


def _json_path(text: str, where: str) -> JsonPath:
    try:
        return JsonPath.parse(text)
    except ValueError as exc:
        raise ConfigError(f"{where}: {exc}") from None


def _parse_step(table: Any, where: str) -> Step:
    if not isinstance(table, Mapping):
        raise ConfigError(f"{where}: a step must be a table with send/expect keys")
    check_keys(table, _STEP_KEYS, where)
    step = Step(
        send=typed(table, "send", str, where) if "send" in table else None,
        expect=_regex(typed(table, "expect", str, where), where) if "expect" in table else None,
        expect_json=_json_path(typed(table, "expect_json", str, where), where) if "expect_json" in table else None,
        extract=_json_path(typed(table, "extract", str, where), where) if "extract" in table else None,
        value_name=typed(table, "name", str, where) if "name" in table else "value",
    )
    if step.send is None and not step.waits:
        raise ConfigError(f"{where}: a step needs send, expect, expect_json or extract")
    if not LABEL_NAME.fullmatch(step.value_name):
        raise ConfigError(f"{where}: name {step.value_name!r} must be a label-safe identifier")
    return step


def parse_module(name: str, table: Mapping[str, Any], where: str, env: Mapping[str, str] | None = None) -> Module:
    """Validate a ``[modules.<name>]`` table; ConfigError names the first thing wrong."""
    where = f"{where}: module {name!r}"
    check_keys(table, _MODULE_KEYS, where)
    opts: dict[str, Any] = {"name": name}
    if "timeout" in table:
        opts["timeout"] = duration(table, "timeout", where)
        if opts["timeout"] <= 0:
            raise ConfigError(f"{where}: timeout must be greater than 0")
    if "ping" in table:
        opts["ping"] = typed(table, "ping", bool, where)
    if "pings" in table:
        opts["pings"] = typed(table, "pings", int, where)
        if not 1 <= opts["pings"] <= 100:
            raise ConfigError(f"{where}: pings must be between 1 and 100")
    if "ping_spacing" in table:
        opts["ping_spacing"] = duration(table, "ping_spacing", where)
    headers: list[tuple[str, str]] = []
    if "headers" in table:
        raw_headers = typed(table, "headers", Mapping, where)
        for key, value in raw_headers.items():
            if not isinstance(value, str):
                raise ConfigError(f"{where}: header {key!r} must be a string")
            value = expand_env(value, where, env)
            if key.lower() in ("authorization", "cookie", "proxy-authorization"):
                secrets.add([value])
            headers.append((key, value))
    if "basic_auth" in table:
        headers.append(("Authorization", basic_authorization(table, where, env)))
    bearer = secret(table, "bearer_token", where, env)
    if bearer is not None:
        headers.append(("Authorization", f"Bearer {bearer}"))
    if sum(1 for k, _ in headers if k.lower() == "authorization") > 1:
        raise ConfigError(f"{where}: set one of basic_auth, bearer_token or an Authorization header")
    opts["headers"] = tuple(headers)
    if "subprotocols" in table:
        protos = typed(table, "subprotocols", list, where)
        if not all(isinstance(p, str) and p for p in protos):
            raise ConfigError(f"{where}: subprotocols must be a list of non-empty strings")
        opts["subprotocols"] = tuple(protos)
    if "tls" in table:
        tls = typed(table, "tls", Mapping, where)
        check_keys(tls, _TLS_KEYS, f"{where}: tls")
        for key in _TLS_KEYS - {"insecure_skip_verify"}:
            if key in tls:
                typed(tls, key, str, f"{where}: tls")
        if "insecure_skip_verify" in tls:
            typed(tls, "insecure_skip_verify", bool, f"{where}: tls")
        if ("cert_file" in tls) != ("key_file" in tls):
            raise ConfigError(f"{where}: tls needs both cert_file and key_file for a client certificate")
        opts["tls"] = TLSOptions(**tls)
    if "proxy_url" in table:
        proxy = expand_env(typed(table, "proxy_url", str, where), where, env)
        if not proxy.startswith("http://"):
            raise ConfigError(f"{where}: proxy_url must be an http:// URL of an HTTP CONNECT proxy")
        secrets.add_url(proxy)
        opts["proxy_url"] = proxy
    if "ip_protocol" in table:
        ip = typed(table, "ip_protocol", str, where)
        if ip not in ("auto", "ip4", "ip6"):
            raise ConfigError(f"{where}: ip_protocol must be auto, ip4 or ip6, not {ip!r}")
        opts["ip_protocol"] = ip
    if "ip_protocol_fallback" in table:
        opts["ip_protocol_fallback"] = typed(table, "ip_protocol_fallback", bool, where)
    if "max_message_size" in table:
        opts["max_message_size"] = typed(table, "max_message_size", int, where)
        if opts["max_message_size"] < 1:
            raise ConfigError(f"{where}: max_message_size must be at least 1 byte")
    if "steps" in table:
        raw_steps = typed(table, "steps", list, where)
        opts["steps"] = tuple(_parse_step(s, f"{where}: step {i + 1}") for i, s in enumerate(raw_steps))
    return Module(**opts)
