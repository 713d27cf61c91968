"""The config file (``targets.toml``): settings, probe modules and targets.

Validation rejects unknown keys and bad values with one line naming the file, the target and
what to do; ``wsmon config check`` runs exactly this code.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

from wsmon.config.modules import parse_module
from wsmon.config.push import PushTarget, parse_push
from wsmon.config.secret_sources import expand_env, read_bounded, read_secret_file, register_url_secrets
from wsmon.config.series import FULL, SeriesBudget, parse_series
from wsmon.config.validate import LABEL_NAME, check_keys, duration, typed
from wsmon.config.web import WebConfig, parse_web
from wsmon.errors import ConfigError, TargetError
from wsmon.probe.jsonpath import JsonPath
from wsmon.probe.module import BUILTIN_MODULES, Module
from wsmon.ws.url import parse_target

__all__ = [
    "Config",
    "Mode",
    "Settings",
    "Subscription",
    "Target",
    "load_config",
    "parse_config",
    "parse_target_table",
]


class Mode(StrEnum):
    """How wsmon watches a target (the value is what ``mode = "…"`` says in the file)."""

    PROBE = "probe"  # a fresh connection per interval, as /probe does
    PERSISTENT = "persistent"  # one long-lived connection, pinged every ping interval
    SCRAPE = "scrape"  # nothing of wsmon's own: only `/probe?target=<name>` (a VMProbe's targets)


_TOP_KEYS = {"settings", "modules", "targets", "push", "web"}
_SETTINGS_KEYS = {
    "interval",
    "timeout",
    "ping_interval",
    "window",
    "max_in_flight",
    "reconnect_backoff",
    "reconnect_backoff_max",
    "series",
}
_DURATION_SETTINGS = _SETTINGS_KEYS - {"max_in_flight", "series"}
_TARGET_KEYS = {"name", "url", "url_file", "mode", "module", "interval", "timeout", "labels", "subscribe", "series"}
_SUBSCRIBE_KEYS = {"send", "extract", "name"}
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:-]*")
# Labels wsmon's own series use; a target label of the same name would clash with them.
RESERVED_LABELS = frozenset(
    {
        "target",
        "job",
        "instance",
        "le",
        "quantile",
        "result",
        "reason",
        "state",
        "name",
        "phase",
        "step",
        "version",
        "mode",
        "push",
    }
)
DEFAULT_TIMEOUT = 10.0
# 20,000 targets take 2.5 MB; a file many times that size is a mistake, not a config.
MAX_CONFIG_FILE = 64 << 20


@dataclass(frozen=True, slots=True)
class Settings:
    interval: float = 30.0  # probe mode: one probe per target per interval
    timeout: float = DEFAULT_TIMEOUT
    ping_interval: float = 1.0  # persistent mode: one ping per connection per interval
    window: float = 300.0  # rolling window of the latency quantiles
    max_in_flight: int = 256  # probe mode: probes running at once, at most
    reconnect_backoff: float = 0.5  # persistent mode: first pause before reconnecting
    reconnect_backoff_max: float = 30.0
    series: SeriesBudget = FULL  # every target's, unless its own says otherwise


@dataclass(frozen=True, slots=True)
class Subscription:
    """Sent once a persistent connection is open (e.g. ``eth_subscribe``); every message counts."""

    send: str
    extract: JsonPath | None = None  # a number to export from each message (block height)
    name: str = "value"


@dataclass(frozen=True, slots=True)
class Target:
    name: str  # the `target` label: never the URL, which may hold a token
    url: str = field(repr=False)
    module: Module
    mode: Mode = Mode.PROBE
    interval: float = 30.0
    timeout: float = DEFAULT_TIMEOUT  # the target's own, else the smaller of module's and settings'/flag
    labels: tuple[tuple[str, str], ...] = ()
    subscribe: Subscription | None = None
    series: SeriesBudget = FULL

    @property
    def redacted_url(self) -> str:
        return parse_target(self.url).redacted


@dataclass(frozen=True, slots=True)
class Config:
    settings: Settings = field(default_factory=Settings)
    modules: Mapping[str, Module] = field(default_factory=lambda: dict(BUILTIN_MODULES))
    targets: tuple[Target, ...] = ()
    pushes: tuple[PushTarget, ...] = ()
    web: WebConfig = field(default_factory=WebConfig)

    def target(self, name: str) -> Target | None:
        return next((t for t in self.targets if t.name == name), None)


def _table(value: Any, where: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise ConfigError(f"{where} must be a table")
    return value


def _seconds(value: float) -> str:
    return f"{value:g}s"


def _parse_settings(raw: Mapping[str, Any], where: str, overrides: Mapping[str, Any]) -> Settings:
    where = f"{where}: [settings]"
    check_keys(raw, _SETTINGS_KEYS, where)
    values: dict[str, Any] = {}
    for key in _DURATION_SETTINGS:
        if key in raw:
            values[key] = duration(raw, key, where)
            if values[key] <= 0:
                raise ConfigError(f"{where}: {key} must be greater than 0")
    if "max_in_flight" in raw:
        values["max_in_flight"] = typed(raw, "max_in_flight", int, where)
        if values["max_in_flight"] < 1:
            raise ConfigError(f"{where}: max_in_flight must be at least 1")
    if "series" in raw:
        values["series"] = parse_series(raw["series"], where, FULL)
    values.update(overrides)  # command-line flags win over the file
    settings = Settings(**values)
    if settings.reconnect_backoff > settings.reconnect_backoff_max:
        raise ConfigError(f"{where}: reconnect_backoff must not exceed reconnect_backoff_max")
    return settings


def _parse_subscription(raw: Any, where: str) -> Subscription:
    table = _table(raw, f"{where}: subscribe")
    check_keys(table, _SUBSCRIBE_KEYS, f"{where}: subscribe")
    if "send" not in table:
        raise ConfigError(f"{where}: subscribe needs send, the message that starts the stream")
    extract = None
    if "extract" in table:
        try:
            extract = JsonPath.parse(typed(table, "extract", str, f"{where}: subscribe"))
        except ValueError as exc:
            raise ConfigError(f"{where}: subscribe: {exc}") from None
    name = typed(table, "name", str, f"{where}: subscribe") if "name" in table else "value"
    if not LABEL_NAME.fullmatch(name):
        raise ConfigError(f"{where}: subscribe: name {name!r} must be a label-safe identifier")
    return Subscription(send=typed(table, "send", str, f"{where}: subscribe"), extract=extract, name=name)


def _parse_labels(raw: Any, where: str) -> tuple[tuple[str, str], ...]:
    table = _table(raw, f"{where}: labels")
    labels = []
    for key, value in table.items():
        if not LABEL_NAME.fullmatch(key) or key.startswith("__"):
            raise ConfigError(f"{where}: label name {key!r} is not valid; use letters, digits and _")
        if key in RESERVED_LABELS:
            raise ConfigError(f"{where}: label {key!r} is used by wsmon itself; choose another name")
        if not isinstance(value, str):
            raise ConfigError(f"{where}: label {key!r} must be a string")
        labels.append((key, value))
    return tuple(sorted(labels))


def parse_target_table(
    raw: Any, index: int, where: str, settings: Settings, modules: Mapping[str, Module], env: Mapping[str, str] | None
) -> Target:
    """One ``[[targets]]`` table (also what the dashboard's "add a target" sends)."""
    table = _table(raw, f"{where}: target #{index}")
    name = table.get("name")
    if not isinstance(name, str) or not name:
        raise ConfigError(f'{where}: target #{index} has no name; give it name = "…" (it becomes the target label)')
    if not _NAME.fullmatch(name):
        raise ConfigError(
            f"{where}: target {name!r}: names may hold letters, digits and _ . : - (and start with a letter or digit)"
        )
    where = f"{where}: target {name!r}"
    check_keys(table, _TARGET_KEYS, where)
    if ("url" in table) == ("url_file" in table):
        raise ConfigError(f"{where}: set url or url_file (one of them)")
    if "url" in table:
        url = expand_env(typed(table, "url", str, where), where, env)
    else:
        url = read_secret_file(typed(table, "url_file", str, where), where)
    try:
        parsed = parse_target(url)
    except TargetError as exc:
        raise ConfigError(f"{where}: {exc}") from None
    register_url_secrets(url, parsed.basic_auth, from_file="url_file" in table)
    try:
        mode = Mode(typed(table, "mode", str, where)) if "mode" in table else Mode.PROBE
    except ValueError:
        raise ConfigError(f"{where}: mode must be probe, persistent or scrape, not {table['mode']!r}") from None
    module_name = typed(table, "module", str, where) if "module" in table else "ping"
    module = modules.get(module_name)
    if module is None:
        known = ", ".join(sorted(modules))
        raise ConfigError(f"{where}: unknown module {module_name!r}; define [modules.{module_name}] or use: {known}")
    interval = duration(table, "interval", where) if "interval" in table else settings.interval
    if interval <= 0:
        raise ConfigError(f"{where}: interval must be greater than 0")
    timeout = settings.timeout
    if module.timeout is not None:
        timeout = min(timeout, module.timeout)
    if "timeout" in table:
        timeout = duration(table, "timeout", where)
        if timeout <= 0:
            raise ConfigError(f"{where}: timeout must be greater than 0")
    if mode is Mode.PROBE and timeout >= interval:
        raise ConfigError(
            f"{where}: timeout {_seconds(timeout)} is not shorter than interval {_seconds(interval)}; "
            "lower the timeout or raise the interval"
        )
    subscribe = None
    if "subscribe" in table:
        if mode is not Mode.PERSISTENT:
            raise ConfigError(f'{where}: subscribe needs mode = "persistent"')
        subscribe = _parse_subscription(table["subscribe"], where)
    labels = _parse_labels(table["labels"], where) if "labels" in table else ()
    series = parse_series(table["series"], where, settings.series) if "series" in table else settings.series
    return Target(
        name=name,
        url=url,
        module=module,
        mode=mode,
        interval=interval,
        timeout=timeout,
        labels=labels,
        subscribe=subscribe,
        series=series,
    )


def parse_config(
    data: Mapping[str, Any],
    where: str,
    env: Mapping[str, str] | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> Config:
    """Validate a parsed config file; ``overrides`` are Settings fields set by command-line flags."""
    check_keys(data, _TOP_KEYS, where)
    settings = _parse_settings(_table(data.get("settings", {}), f"{where}: [settings]"), where, overrides or {})
    modules = dict(BUILTIN_MODULES)
    for name, table in _table(data.get("modules", {}), f"{where}: [modules]").items():
        if name in BUILTIN_MODULES:
            raise ConfigError(f"{where}: module {name!r} is built in; give yours another name")
        modules[name] = parse_module(name, _table(table, f"{where}: [modules.{name}]"), where, env)
    raw_targets = data.get("targets", [])
    if not isinstance(raw_targets, list):
        raise ConfigError(f"{where}: targets must be an array of tables: write [[targets]] for each")
    targets: list[Target] = []
    seen: set[str] = set()
    for index, raw in enumerate(raw_targets, 1):
        target = parse_target_table(raw, index, where, settings, modules, env)
        if target.name in seen:
            raise ConfigError(f"{where}: target {target.name!r} is defined twice; target names must be unique")
        seen.add(target.name)
        targets.append(target)
    raw_pushes = data.get("push", [])
    if not isinstance(raw_pushes, list):
        raise ConfigError(f"{where}: push must be an array of tables: write [[push]] for each destination")
    pushes = tuple(parse_push(_table(p, f"{where}: push #{i}"), i, where, env) for i, p in enumerate(raw_pushes, 1))
    if len({p.name for p in pushes}) != len(pushes):
        raise ConfigError(f'{where}: two [[push]] destinations share a name; give each its own name = "…"')
    web = parse_web(_table(data["web"], f"{where}: [web]"), where, env) if "web" in data else WebConfig()
    return Config(settings=settings, modules=modules, targets=tuple(targets), pushes=pushes, web=web)


def load_config(
    path: str | Path, env: Mapping[str, str] | None = None, overrides: Mapping[str, Any] | None = None
) -> Config:
    """The config file at ``path``; ConfigError (one line) for whatever makes it unusable.

    The file is read as ``read_bounded`` reads secret files (a regular file, at most
    ``MAX_CONFIG_FILE`` bytes), and a file nested too deeply for the parser or too large for
    memory is refused like any invalid file: a reload of a hostile file keeps the config in
    force instead of failing with an exception.
    """
    where = str(path)
    try:
        text = read_bounded(str(path), MAX_CONFIG_FILE).decode("utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{where}: no such file; pass --config with the path of your targets.toml") from None
    except OSError as exc:
        raise ConfigError(f"{where}: cannot read: {exc.strerror or type(exc).__name__}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{where}: not valid TOML: the file must be UTF-8 text") from None
    except ValueError as exc:  # not a regular file, or too large
        raise ConfigError(f"{where} {exc}") from None
    except MemoryError:
        raise ConfigError(f"{where}: too large to load into memory") from None
    try:
        data = tomllib.loads(text)
        return parse_config(data, where, env, overrides)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{where}: not valid TOML: {exc}") from None
    except RecursionError:
        raise ConfigError(f"{where}: tables or arrays nested too deeply; flatten the file") from None
    except MemoryError:
        raise ConfigError(f"{where}: too large to load into memory") from None
