"""``[web]``: who may use wsmon's HTTP endpoints, TLS, and where ``/probe`` may connect.

```toml
[web]
tls_cert_file = "/etc/wsmon/tls.crt"       # serve HTTPS (both or neither)
tls_key_file = "/etc/wsmon/tls.key"
protect_all = false                        # true: /metrics and /probe need a login too
probe_allow = ["node1", "wss://*.example.com/**"]  # names or URL patterns; unset: any target
trusted_proxies = ["10.0.0.0/8"]           # reverse proxies whose X-Forwarded-For/-Proto count
session_ttl = "12h"                        # a login form's session ends this long after the login
base_url = "wss://feeds.example.com/ws/"   # the dashboard adds targets by endpoint name: base_url + name

[web.users.alice]                          # dashboard users; none: the dashboard is off
password_hash = "$2b$12$…"                 # `wsmon hash-password` makes one (bcrypt)
role = "admin"                             # admin: act; viewer: look
[web.tokens.ci]
token_file = "/run/secrets/wsmon-token"    # Authorization: Bearer <the file's content>
role = "viewer"
```
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from wsmon.config.secret_sources import expand_env, read_secret_file, register_url_secrets
from wsmon.config.tls import check_readable
from wsmon.config.url_patterns import check_pattern, url_matches
from wsmon.config.validate import check_keys, duration, typed
from wsmon.errors import ConfigError, TargetError
from wsmon.ws.url import parse_target

__all__ = ["MAX_ENDPOINT", "Role", "TokenUser", "User", "WebConfig", "parse_web"]

Role = Literal["admin", "viewer"]

_KEYS = {
    "tls_cert_file",
    "tls_key_file",
    "protect_all",
    "probe_allow",
    "trusted_proxies",
    "users",
    "tokens",
    "session_ttl",
    "base_url",
    "base_url_file",
}
_USER_KEYS = {"password_hash", "role"}
_TOKEN_KEYS = {"token_file", "role"}


@dataclass(frozen=True, slots=True)
class User:
    name: str
    password_hash: bytes = field(repr=False)
    role: Role


@dataclass(frozen=True, slots=True)
class TokenUser:
    name: str
    token: str = field(repr=False)
    role: Role


DEFAULT_SESSION_TTL = 12 * 3600.0
MAX_ENDPOINT = 256  # characters of an endpoint name (a token, at times)
# One path segment of unreserved characters (RFC 3986): nothing a server decodes or resolves
# into another path ("%2e%2e", "\\", "/"), nothing that ends the path ("?", "#").
_ENDPOINT = re.compile(r"[A-Za-z0-9._~-]+")


def _valid_endpoint(name: object) -> bool:
    return (
        isinstance(name, str)
        and len(name) <= MAX_ENDPOINT
        and _ENDPOINT.fullmatch(name) is not None
        and name != "."
        and ".." not in name
    )


@dataclass(frozen=True, slots=True)
class WebConfig:
    users: tuple[User, ...] = ()
    tokens: tuple[TokenUser, ...] = ()
    tls_cert_file: str | None = None
    tls_key_file: str | None = None
    protect_all: bool = False
    probe_allow: tuple[str, ...] | None = None  # None: any target may be probed
    # Peers whose X-Forwarded-For and X-Forwarded-Proto are believed; nobody's by default.
    trusted_proxies: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...] = ()
    session_ttl: float = DEFAULT_SESSION_TTL  # a login form's session lasts this long (absolute)
    base_url: str | None = field(default=None, repr=False)  # targets added by endpoint name: base_url + name

    def trusts(self, address: str) -> bool:
        """Whether ``address`` (a peer's IP) is one of ``trusted_proxies``."""
        if not self.trusted_proxies:
            return False
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            return False
        ip = getattr(ip, "ipv4_mapped", None) or ip  # a dual-stack socket shows IPv4 peers as ::ffff:a.b.c.d
        return any(ip in network for network in self.trusted_proxies)

    @property
    def dashboard_enabled(self) -> bool:
        return bool(self.users or self.tokens)

    @property
    def redacted_base_url(self) -> str | None:
        return None if self.base_url is None else parse_target(self.base_url).redacted

    def endpoint_url(self, endpoint: object, where: str) -> str:
        """``base_url`` + ``endpoint``: the URL of an endpoint given by name (a query string of
        ``base_url`` stays at the end). ConfigError unless ``base_url`` is set and ``endpoint``
        is one path segment of unreserved characters, so that the URL stays on base_url's host
        and below its path. The message never quotes the name (it may be a token)."""
        if self.base_url is None:
            raise ConfigError(f"{where}: an endpoint name needs [web] base_url in the config; give a full url instead")
        if not _valid_endpoint(endpoint):
            raise ConfigError(
                f"{where}: endpoint must be a name of 1 to {MAX_ENDPOINT} letters, digits and - . _ ~ "
                "(no /, ?, #, .., %, spaces), appended to [web] base_url"
            )
        path, sep, query = self.base_url.partition("?")
        return f"{path}{endpoint}{sep}{query}"  # the path ends with "/": see _base_url

    def probe_allowed(self, target: str, is_configured_name: bool) -> bool:
        """Whether ``/probe`` may connect to ``target`` (a URL, or a configured name)."""
        if self.probe_allow is None:
            return True
        for rule in self.probe_allow:
            if "://" in rule:
                if not is_configured_name and url_matches(target, rule):
                    return True
            elif is_configured_name and (rule == target or rule == "*"):
                return True
        return False


def _role(table: Mapping[str, Any], where: str) -> Role:
    role = typed(table, "role", str, where) if "role" in table else "viewer"
    if role not in ("admin", "viewer"):
        raise ConfigError(f"{where}: role must be admin or viewer, not {role!r}")
    return "admin" if role == "admin" else "viewer"


def _accounts(
    table: Mapping[str, Any], key: str, where: str, keys: set[str]
) -> list[tuple[str, str, Mapping[str, Any]]]:
    """(name, where, table) of each ``[web.<key>.<name>]`` table, its keys checked."""
    accounts = []
    kind = key.rstrip("s")  # "users" → "user", "tokens" → "token"
    for name, raw in typed(table, key, Mapping, where).items() if key in table else ():
        account_where = f"{where} {kind} {name!r}"
        if not isinstance(raw, Mapping):
            raise ConfigError(f"{account_where} must be a table with {' and '.join(sorted(keys))}")
        check_keys(raw, keys, account_where)
        accounts.append((name, account_where, raw))
    return accounts


def _user(name: str, where: str, raw: Mapping[str, Any]) -> User:
    if "password_hash" not in raw:
        raise ConfigError(f"{where}: password_hash is missing; make one with `wsmon hash-password`")
    hashed = typed(raw, "password_hash", str, where)
    if not hashed.startswith(("$2a$", "$2b$", "$2y$")):
        raise ConfigError(f"{where}: password_hash must be a bcrypt hash; make one with `wsmon hash-password`")
    return User(name=name, password_hash=hashed.encode(), role=_role(raw, where))


def _token(name: str, where: str, raw: Mapping[str, Any]) -> TokenUser:
    if "token_file" not in raw:
        raise ConfigError(f"{where}: token_file is missing")
    token = read_secret_file(typed(raw, "token_file", str, where), where)
    if len(token) < 16:
        raise ConfigError(f"{where}: the token must be at least 16 characters long")
    return TokenUser(name=name, token=token, role=_role(raw, where))


def parse_web(table: Mapping[str, Any], where: str, env: Mapping[str, str] | None = None) -> WebConfig:
    where = f"{where}: [web]"
    check_keys(table, _KEYS, where)
    users = [_user(*account) for account in _accounts(table, "users", where, _USER_KEYS)]
    tokens = [_token(*account) for account in _accounts(table, "tokens", where, _TOKEN_KEYS)]
    cert = typed(table, "tls_cert_file", str, where) if "tls_cert_file" in table else None
    key = typed(table, "tls_key_file", str, where) if "tls_key_file" in table else None
    if (cert is None) != (key is None):
        raise ConfigError(f"{where}: set both tls_cert_file and tls_key_file to serve HTTPS")
    for file_key in ("tls_cert_file", "tls_key_file"):
        check_readable(table, file_key, where)
    protect_all = typed(table, "protect_all", bool, where) if "protect_all" in table else False
    if protect_all and not (users or tokens):
        raise ConfigError(f"{where}: protect_all needs at least one user or token")
    allow = None
    if "probe_allow" in table:
        rules = typed(table, "probe_allow", list, where)
        if not all(isinstance(rule, str) and rule for rule in rules):
            raise ConfigError(f"{where}: probe_allow must list target names or URL patterns")
        for index, rule in enumerate(rules, 1):
            if "://" in rule:
                check_pattern(rule, f"{where}: probe_allow entry {index}")
        allow = tuple(rules)
    ttl = duration(table, "session_ttl", where) if "session_ttl" in table else DEFAULT_SESSION_TTL
    if ttl <= 0:
        raise ConfigError(f"{where}: session_ttl must be greater than 0")
    return WebConfig(
        users=tuple(users),
        tokens=tuple(tokens),
        tls_cert_file=cert,
        tls_key_file=key,
        protect_all=protect_all,
        probe_allow=allow,
        trusted_proxies=_networks(table, where),
        session_ttl=ttl,
        base_url=_base_url(table, where, env),
    )


def _base_url(table: Mapping[str, Any], where: str, env: Mapping[str, str] | None) -> str | None:
    """``base_url`` (or ``base_url_file``'s content): a ws:// or wss:// URL whose path ends with
    "/", without a fragment. Its secrets are registered as a target URL's are."""
    if "base_url" in table and "base_url_file" in table:
        raise ConfigError(f"{where}: set base_url or base_url_file, not both")
    if "base_url" in table:
        url = expand_env(typed(table, "base_url", str, where), where, env).strip()
    elif "base_url_file" in table:
        url = read_secret_file(typed(table, "base_url_file", str, where), where)
    else:
        return None
    try:
        parsed = parse_target(url)
    except TargetError as exc:
        raise ConfigError(f"{where}: base_url: {exc}") from None
    register_url_secrets(url, parsed.basic_auth, from_file="base_url_file" in table)
    if "#" in url or not url.partition("?")[0].endswith("/"):
        raise ConfigError(
            f"{where}: base_url must end its path with / and have no #fragment "
            '(an endpoint name is appended to it: "wss://feeds.example.com/ws/" + "data-feed")'
        )
    return url


def _networks(table: Mapping[str, Any], where: str) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    if "trusted_proxies" not in table:
        return ()
    networks = []
    for index, entry in enumerate(typed(table, "trusted_proxies", list, where), 1):
        try:
            if not isinstance(entry, str):
                raise TypeError(entry)
            networks.append(ipaddress.ip_network(entry, strict=False))
        except (TypeError, ValueError):
            raise ConfigError(
                f"{where}: trusted_proxies entry {index} is not an IP address or network "
                '(e.g. "10.0.0.1" or "10.0.0.0/8")'
            ) from None
    return tuple(networks)
