"""``[modules.<name>]`` tables: a probe module's options, validated into a ``Module``."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from wsmon.config.credentials import CREDENTIAL_KEYS, parse_authorization
from wsmon.config.secret_sources import expand_env
from wsmon.config.tls import parse_tls
from wsmon.config.url_patterns import check_pattern
from wsmon.config.validate import LABEL_NAME, check_keys, duration, typed
from wsmon.errors import ConfigError
from wsmon.probe.jsonpath import JsonPath
from wsmon.probe.module import Module, Step
from wsmon.redact import secrets

__all__ = ["parse_module"]


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
    "allow",
    *CREDENTIAL_KEYS,
}
# Headers whose value is a credential: a module that sends one must not go to any host /probe
# is asked for. By name (Authorization, Cookie, X-Api-Key, X-Auth-Token…), or by a value taken
# from the environment.
_SECRET_HEADER = re.compile(r"auth|cookie|token|key|secret|session|passw|credential|signature", re.IGNORECASE)
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
    credentials = False
    if "headers" in table:
        raw_headers = typed(table, "headers", Mapping, where)
        for key, value in raw_headers.items():
            if not isinstance(value, str):
                raise ConfigError(f"{where}: header {key!r} must be a string")
            expanded = expand_env(value, where, env)
            if key.lower() in ("authorization", "cookie", "proxy-authorization"):
                secrets.add([expanded])
            credentials = credentials or expanded != value or bool(_SECRET_HEADER.search(key))
            headers.append((key, expanded))
    authorization = parse_authorization(table, where, env)
    if authorization is not None:
        headers.append(("Authorization", authorization))
        credentials = True
    opts["carries_credentials"] = credentials
    if "allow" in table:
        rules = typed(table, "allow", list, where)
        for index, rule in enumerate(rules, 1):
            if not isinstance(rule, str):
                raise ConfigError(f"{where}: allow entry {index} must be a string (a ws:// or wss:// URL pattern)")
            check_pattern(rule, f"{where}: allow entry {index}")
        opts["allow"] = tuple(rules)
    if sum(1 for k, _ in headers if k.lower() == "authorization") > 1:
        raise ConfigError(f"{where}: set one of basic_auth, bearer_token or an Authorization header")
    opts["headers"] = tuple(headers)
    if "subprotocols" in table:
        protos = typed(table, "subprotocols", list, where)
        if not all(isinstance(p, str) and p for p in protos):
            raise ConfigError(f"{where}: subprotocols must be a list of non-empty strings")
        opts["subprotocols"] = tuple(protos)
    opts["tls"] = parse_tls(table, where)
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
