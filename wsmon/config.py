"""The config file (``targets.toml``): settings and probe modules.

Validation rejects unknown keys and bad values with one line naming the file and what to do.
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from wsmon.durations import parse_duration
from wsmon.errors import ConfigError
from wsmon.modules import BUILTIN_MODULES, Module, parse_module

__all__ = ["Config", "Settings", "load_config", "parse_config"]

_TOP_KEYS = {"settings", "modules"}
_SETTINGS_KEYS = {"timeout"}


@dataclass(frozen=True, slots=True)
class Settings:
    timeout: float | None = None  # None: the --timeout flag's default


@dataclass(frozen=True, slots=True)
class Config:
    settings: Settings = field(default_factory=Settings)
    modules: Mapping[str, Module] = field(default_factory=lambda: dict(BUILTIN_MODULES))


def _table(value: Any, where: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise ConfigError(f"{where} must be a table")
    return value


def _unknown(table: Mapping[str, Any], allowed: set[str], where: str) -> None:
    unknown = sorted(set(table) - allowed)
    if unknown:
        raise ConfigError(f"{where}: unknown key {unknown[0]!r}; allowed: {', '.join(sorted(allowed))}")


def parse_config(data: Mapping[str, Any], where: str, env: Mapping[str, str] | None = None) -> Config:
    _unknown(data, _TOP_KEYS, where)
    settings = Settings()
    if "settings" in data:
        raw = _table(data["settings"], f"{where}: [settings]")
        _unknown(raw, _SETTINGS_KEYS, f"{where}: [settings]")
        if "timeout" in raw:
            try:
                settings = Settings(timeout=parse_duration(str(raw["timeout"])))
            except ValueError as exc:
                raise ConfigError(f"{where}: [settings] timeout: {exc}") from None
    modules = dict(BUILTIN_MODULES)
    for name, table in _table(data.get("modules", {}), f"{where}: [modules]").items():
        if name in BUILTIN_MODULES:
            raise ConfigError(f"{where}: module {name!r} is built in; give yours another name")
        modules[name] = parse_module(name, _table(table, f"{where}: [modules.{name}]"), where, env)
    return Config(settings=settings, modules=modules)


def load_config(path: str | Path, env: Mapping[str, str] | None = None) -> Config:
    where = str(path)
    try:
        with open(path, "rb") as handle:
            data = tomllib.load(handle)
    except FileNotFoundError:
        raise ConfigError(f"{where}: no such file; pass --config with the path of your targets.toml") from None
    except OSError as exc:
        raise ConfigError(f"{where}: cannot read: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{where}: not valid TOML: {exc}") from None
    return parse_config(data, where, env)
