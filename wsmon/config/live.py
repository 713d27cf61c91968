"""The config in force, owned in one place: the current ``Config``, its reload and the reload gauges.

Everything that needs the config (the web app, the monitor, push) reads ``LiveConfig.current``;
nobody keeps a copy to be kept in sync by hand. A reload either replaces the config as a whole
and tells the listeners, or changes nothing but the ``wsmon_config_last_reload_successful``
gauge (a bad file never stops what runs).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from typing import Any, Protocol

import structlog

from wsmon.config.file import Config, load_config
from wsmon.errors import ConfigError

__all__ = ["LiveConfig"]

log = structlog.get_logger("wsmon")


class Gauge(Protocol):
    def set(self, value: float) -> None: ...


class LiveConfig:
    """The current config and how it is reloaded (blackbox_exporter's ``SafeConfig``).

    ``path`` is None when wsmon runs without ``--config``: there is nothing to reload then.
    ``overrides`` are the Settings fields set by command-line flags; they win at every reload.
    """

    def __init__(
        self,
        config: Config,
        *,
        path: str | None = None,
        overrides: Mapping[str, Any] | None = None,
        reload_ok: Gauge | None = None,
        reload_time: Gauge | None = None,
    ) -> None:
        self._current = config
        self.path = path
        self._overrides = dict(overrides or {})
        self._reload_ok, self._reload_time = reload_ok, reload_time
        self._listeners: list[Callable[[Config], None]] = []
        # Reloads come from SIGHUP and POST /-/reload on the event loop today; the lock keeps a
        # reload from any other thread from interleaving with one of them all the same.
        self._lock = threading.Lock()
        self._succeeded()

    @property
    def current(self) -> Config:
        return self._current

    def on_change(self, listener: Callable[[Config], None]) -> None:
        """Call ``listener(new_config)`` after each successful reload, in subscription order."""
        self._listeners.append(listener)

    def reload(self) -> bool:
        """Load the file again and apply it; a bad file changes nothing but the gauge (False)."""
        if self.path is None:
            return True
        with self._lock:
            try:
                config = load_config(self.path, overrides=self._overrides)
            except ConfigError as exc:
                return self._refused(str(exc))
            except Exception as exc:  # whatever the cause, a bad file is only refused
                # load_config turns every problem of the file into a ConfigError; anything else
                # is a fault of wsmon's, and it must not stop what runs either. Its text is not
                # shown: an exception may quote what it was parsing.
                return self._refused(
                    f"{self.path}: cannot load: {type(exc).__name__} (a fault of wsmon's; please report)"
                )
            self._current = config
            try:
                for listener in self._listeners:
                    listener(config)
            except Exception as exc:
                # A listener that fails leaves part of the new config applied: say so, and let the
                # gauge tell the operator that this reload did not go through cleanly.
                log.error("config reload applied only in part; reload again or restart", error=type(exc).__name__)
                self._set_ok(0)
                return False
            self._succeeded()
        return True

    def _refused(self, why: str) -> bool:
        self._set_ok(0)
        log.error("config reload failed; the previous config keeps running", error=why)
        return False

    def _set_ok(self, value: float) -> None:
        if self._reload_ok is not None:
            self._reload_ok.set(value)

    def _succeeded(self) -> None:
        self._set_ok(1)
        if self._reload_time is not None:
            self._reload_time.set(time.time())
