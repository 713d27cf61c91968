"""Credentials in the config file, for probe modules and push destinations alike.

```toml
basic_auth = { username = "wsmon", password = "${PASSWORD}" }  # or password_file = "…"
bearer_token = "${TOKEN}"                                       # or bearer_token_file = "…"
```

One of them at most; ``parse_authorization`` turns it into the ``Authorization`` header value.
``${VAR}`` is expanded in ``username``, ``password`` and ``bearer_token``; a ``*_file`` key
reads the file's content. Every value read is registered for scrubbing, and no message quotes
one (messages name keys and types).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from wsmon.config.secret_sources import expand_env, read_secret_file
from wsmon.config.validate import check_keys, typed
from wsmon.errors import ConfigError
from wsmon.redact import secrets
from wsmon.ws.url import basic_credentials

__all__ = ["CREDENTIAL_KEYS", "parse_authorization"]

# The keys of a table (module or push destination) that parse_authorization reads.
CREDENTIAL_KEYS = frozenset({"basic_auth", "bearer_token", "bearer_token_file"})

_BASIC_AUTH_KEYS = {"username", "password", "password_file"}


def parse_authorization(table: Mapping[str, Any], where: str, env: Mapping[str, str] | None) -> str | None:
    """``Basic …`` or ``Bearer …`` from ``table``'s credential keys; None when it has none.

    ConfigError names the first thing wrong, checked in this order: both bearer keys, basic
    auth together with a bearer key, then each value's type, ``${VAR}`` and file.
    """
    bearer_key = _one_of(table, "bearer_token", where)
    if bearer_key is not None and "basic_auth" in table:
        raise ConfigError(f"{where}: set basic_auth or {bearer_key}, not both")
    if "basic_auth" in table:
        return f"Basic {_basic(table, where, env)}"
    bearer = _secret(table, "bearer_token", where, env)
    return None if bearer is None else f"Bearer {bearer}"


def _one_of(table: Mapping[str, Any], key: str, where: str) -> str | None:
    """Which of ``key`` and ``key_file`` the table sets (None: neither); both is an error."""
    if key in table and f"{key}_file" in table:
        raise ConfigError(f"{where}: set {key} or {key}_file, not both")
    if key in table:
        return key
    return f"{key}_file" if f"{key}_file" in table else None


def _secret(table: Mapping[str, Any], key: str, where: str, env: Mapping[str, str] | None) -> str | None:
    """``key`` (with ``${VAR}`` expanded) or the content of ``key_file``; None without either."""
    chosen = _one_of(table, key, where)
    if chosen is None:
        return None
    if chosen != key:
        return read_secret_file(typed(table, chosen, str, where), where)
    value = expand_env(typed(table, key, str, where), where, env)
    secrets.add([value])
    return value


def _basic(table: Mapping[str, Any], where: str, env: Mapping[str, str] | None) -> str:
    """The base64 credentials of ``table``'s ``basic_auth`` table (the password may be empty)."""
    auth = typed(table, "basic_auth", Mapping, where)
    where = f"{where}: basic_auth"
    check_keys(auth, _BASIC_AUTH_KEYS, where)
    if "username" not in auth:
        raise ConfigError(f"{where} needs a username")
    username = expand_env(typed(auth, "username", str, where), where, env)
    password = _secret(auth, "password", where, env) or ""
    return basic_credentials(username, password)
