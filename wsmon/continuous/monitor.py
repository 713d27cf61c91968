"""Continuous mode: the configured targets, kept probing or connected, reloadable, and
changeable at runtime from the dashboard.

The Monitor turns a Config (plus the dashboard's changes, kept in a state file) into running
work: probe-mode timers and persistent connections. A new Config is applied as a difference:
unchanged targets keep their connections and history, changed ones restart, removed ones
close, new ones start.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import structlog

from wsmon.config.file import Config, Target, load_config, parse_target_table
from wsmon.continuous.persistent import PersistentTarget
from wsmon.continuous.scheduler import ProbeScheduler
from wsmon.continuous.shard import shard_of
from wsmon.continuous.state_file import load_changes, save_changes
from wsmon.continuous.store import Store
from wsmon.continuous.wheel import PingWheel
from wsmon.errors import ConfigError, UnknownTarget
from wsmon.metrics.exporter import ExporterMetrics

__all__ = ["Monitor"]

log = structlog.get_logger("wsmon")

CLOSE_GRACE = 2.0  # seconds peers get to answer our close frames on shutdown
MAX_OPENINGS = 256


class Monitor:
    def __init__(
        self,
        config: Config,
        metrics: ExporterMetrics,
        *,
        config_path: str | None = None,
        overrides: dict[str, Any] | None = None,
        shard: tuple[int, int] = (0, 1),
        state_path: Path | None = None,
    ) -> None:
        self.config = config
        self.metrics = metrics
        self.store = Store()
        self._path = config_path
        self._overrides = overrides or {}
        self._shard = shard
        self._state_path = state_path
        self.changes = load_changes(state_path)
        self.runtime_names: set[str] = set()  # targets added from the dashboard
        self._scheduler = ProbeScheduler(
            config.settings.max_in_flight, metrics.scheduler_lag.observe, metrics.in_flight.inc
        )
        self._wheel = PingWheel(config.settings.ping_interval, metrics.scheduler_lag.observe)
        self._persistent: dict[str, PersistentTarget] = {}
        # Connections opened at once, at most: 10,000 at start-up fragment memory for good
        # (measured: 10.1 KB RSS per target against 5.9 with this bound).
        self._openings = asyncio.Semaphore(MAX_OPENINGS)
        self._targets: dict[str, Target] = {}  # every target of this replica, paused ones too
        metrics.shard.labels(str(shard[0]), str(shard[1])).set(1)
        self._apply(config)
        self._reloaded()

    # --- what should run -------------------------------------------------------------------

    def _runtime_target(self, table: dict[str, Any], config: Config) -> Target:
        # No ${VAR} expansion: a dashboard user must not be able to read wsmon's environment.
        return parse_target_table(table, 1, "dashboard", config.settings, config.modules, {})

    def _wanted(self, config: Config) -> dict[str, Target]:
        """The targets this replica runs (scrape-mode ones only answer ``/probe``)."""
        # A config target removed from the dashboard stays hidden (its name may be reused there).
        targets = {t.name: t for t in config.targets if t.name not in self.changes.removed and t.mode != "scrape"}
        self.runtime_names = set()
        for table in self.changes.added:
            try:
                target = self._runtime_target(table, config)
            except ConfigError as exc:
                log.error("a target added at runtime is no longer valid; skipped", error=str(exc))
                continue
            if target.name in targets:
                log.warning(
                    "a target added at runtime has the name of a configured one; the config wins", target=target.name
                )
                continue
            if target.mode != "scrape":
                targets[target.name] = target
                self.runtime_names.add(target.name)
        index, count = self._shard
        return {n: t for n, t in targets.items() if count == 1 or shard_of(n, count) == index}

    def _apply(self, config: Config) -> None:
        wanted = self._wanted(config)
        for name, old in list(self._targets.items()):
            if wanted.get(name) != old:
                self._drop(name, code=1000)
        self.config = config
        self._wheel.set_interval(config.settings.ping_interval)
        for name, target in wanted.items():
            if name not in self._targets:
                self._targets[name] = target
                interval = config.settings.ping_interval if target.mode == "persistent" else target.interval
                self.store.add(target, config.settings.window, interval)
                if name not in self.changes.paused:
                    self._start(name)
        for mode in ("probe", "persistent"):
            self.metrics.targets.labels(mode).set(sum(t.mode == mode for t in self._targets.values()))

    def _start(self, name: str) -> None:
        target, state = self._targets[name], self.store.get(name)
        assert state is not None
        settings = self.config.settings
        state.paused = False
        if target.mode == "persistent":
            runner = PersistentTarget(
                target, state, self._wheel, settings.reconnect_backoff, settings.reconnect_backoff_max, self._openings
            )
            self._persistent[name] = runner
            runner.start()
        else:
            self._scheduler.add(target, state)

    def _halt(self, name: str, code: int) -> None:
        """Stop probing or close the connection; the target and its history stay."""
        if self._targets[name].mode == "persistent":
            runner = self._persistent.pop(name, None)
            if runner is not None:
                runner.begin_stop(code)
        else:
            self._scheduler.remove(name)

    def _drop(self, name: str, code: int) -> None:
        self._halt(name, code)
        del self._targets[name]
        self.store.remove(name)

    # --- reload ----------------------------------------------------------------------------

    def _reloaded(self) -> None:
        self.metrics.reload_ok.set(1)
        self.metrics.reload_time.set(time.time())

    def reload(self) -> bool:
        """Load the config file again and apply it; a bad file changes nothing but the gauge."""
        if self._path is None:
            return True
        try:
            config = load_config(self._path, overrides=self._overrides)
        except ConfigError as exc:
            self.metrics.reload_ok.set(0)
            log.error("config reload failed; the previous config keeps running", error=str(exc))
            return False
        before = set(self._targets)
        self._apply(config)
        self._reloaded()
        after = set(self._targets)
        log.info("config reloaded", added=sorted(after - before), removed=sorted(before - after), targets=len(after))
        return True

    # --- runtime changes (the dashboard) ----------------------------------------------------

    def _save(self) -> None:
        save_changes(self._state_path, self.changes)

    def _known(self, name: str) -> Target:
        target = self._targets.get(name)
        if target is None:
            raise UnknownTarget(name)
        return target

    def add(self, table: dict[str, Any]) -> Target:
        """Add a target (validated like the config file's); it persists across restarts."""
        target = self._runtime_target(table, self.config)
        if target.mode == "scrape":
            raise ConfigError("dashboard: a scrape-mode target belongs in the config file (the dashboard runs targets)")
        configured = self.config.target(target.name) is not None and target.name not in self.changes.removed
        if target.name in self._targets or configured:
            raise ConfigError(f"dashboard: target {target.name!r} exists already; choose another name")
        self.changes.added.append(dict(table))
        self._save()
        self._apply(self.config)
        log.info("target added at runtime", target=target.name, mode=target.mode)
        return target

    def remove(self, name: str) -> None:
        self._known(name)
        if name in self.runtime_names:
            self.changes.added = [t for t in self.changes.added if t.get("name") != name]
        else:
            self.changes.removed.append(name)
        self.changes.paused = [n for n in self.changes.paused if n != name]
        self._save()
        self._apply(self.config)
        log.info("target removed at runtime", target=name)

    def pause(self, name: str) -> None:
        """Stop probing it, or close its connection and keep it closed (no auto-reconnect)."""
        self._known(name)
        if name in self.changes.paused:
            return
        self.changes.paused.append(name)
        self._save()
        self._halt(name, code=1000)
        state = self.store.get(name)
        assert state is not None
        state.paused = True
        log.info("target paused", target=name)

    def reconnect(self, name: str) -> None:
        """Resume a paused target, or reconnect a persistent one now (skipping its backoff)."""
        target = self._known(name)
        if name in self.changes.paused:
            self.changes.paused = [n for n in self.changes.paused if n != name]
            self._save()
            self._start(name)
            log.info("target resumed", target=name)
        elif target.mode == "persistent":
            self._persistent[name].reconnect_now()
            log.info("reconnect requested", target=name)

    # --- shutdown --------------------------------------------------------------------------

    async def stop(self) -> None:
        """Close every persistent connection with 1001 (going away), stop probing."""
        self._wheel.stop()
        closing = [runner.begin_stop(1001) for runner in self._persistent.values()]
        await self._scheduler.stop()
        if closing:
            _, pending = await asyncio.wait(closing, timeout=CLOSE_GRACE)
            if pending:
                for runner in self._persistent.values():
                    runner.abort()
