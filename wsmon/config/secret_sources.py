"""Secrets come from the environment (``${VAR}``) or from files, never only from the TOML."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path

from wsmon.errors import ConfigError
from wsmon.redact import secrets

__all__ = ["expand_env", "read_secret_file"]

_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


def expand_env(text: str, where: str, env: Mapping[str, str] | None = None) -> str:
    """Replace every ``${VAR}`` with its value; a missing variable is a config error.

    Expanded values are registered as secrets: a ``${VAR}`` is how tokens reach a URL.
    """
    environ = os.environ if env is None else env

    def substitute(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in environ:
            raise ConfigError(f"{where}: environment variable {name} is not set; export it or use a *_file key")
        value = environ[name]
        secrets.add([value])
        return value

    return _VAR.sub(substitute, text)


def read_secret_file(path: str, where: str) -> str:
    """A secret file's content without its trailing newline (as editors and `echo` leave it)."""
    try:
        value = Path(path).read_text(encoding="utf-8").rstrip("\r\n")
    except OSError as exc:
        raise ConfigError(f"{where}: cannot read secret file {path}: {exc.strerror}") from None
    if not value:
        raise ConfigError(f"{where}: secret file {path} is empty")
    secrets.add([value])
    return value
