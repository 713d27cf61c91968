"""Credentials in the config file: a secret as ``key`` (``${VAR}`` allowed) or ``key_file``,
and ``basic_auth = { username, password | password_file }`` tables. Shared by probe modules
and push destinations; every value read is registered for scrubbing."""

from __future__ import annotations

import base64
from collections.abc import Mapping
from typing import Any

from wsmon.config.secret_sources import expand_env, read_secret_file
from wsmon.config.validate import check_keys, typed
from wsmon.errors import ConfigError
from wsmon.redact import secrets

__all__ = ["basic_authorization", "secret"]

_AUTH_KEYS = {"username", "password", "password_file"}


def secret(table: Mapping[str, Any], key: str, where: str, env: Mapping[str, str] | None) -> str | None:
    """``key`` (with ``${VAR}`` expanded) or the content of ``key_file``; never both."""
    if key in table and f"{key}_file" in table:
        raise ConfigError(f"{where}: set {key} or {key}_file, not both")
    if f"{key}_file" in table:
        return read_secret_file(typed(table, f"{key}_file", str, where), where)
    if key in table:
        value = expand_env(typed(table, key, str, where), where, env)
        secrets.add([value])
        return value
    return None


def basic_authorization(table: Mapping[str, Any], where: str, env: Mapping[str, str] | None) -> str:
    """The ``Authorization: Basic …`` value of a ``basic_auth`` table."""
    auth = typed(table, "basic_auth", Mapping, where)
    where = f"{where}: basic_auth"
    check_keys(auth, _AUTH_KEYS, where)
    if "username" not in auth:
        raise ConfigError(f"{where} needs a username")
    username = expand_env(typed(auth, "username", str, where), where, env)
    password = secret(auth, "password", where, env) or ""
    token = base64.b64encode(f"{username}:{password}".encode()).decode()
    secrets.add([token])
    return f"Basic {token}"
