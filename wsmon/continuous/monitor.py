"""Continuous mode: the configured targets, kept probing or connected, reloadable, and
changeable at runtime from the dashboard.

The Monitor turns the config in force (plus the dashboard's changes, kept in a state file) into
running work, through one runner per mode: the probe scheduler's timers and the persistent
connections. A reloaded config is applied as a difference: unchanged targets keep their
connections and history, changed ones restart, removed ones close, new ones start.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any, Protocol

import structlog

from wsmon.config.file import Config, Mode, Settings, Target, parse_target_table
from wsmon.config.live import LiveConfig
from wsmon.continuous.connections import PersistentConnections
from wsmon.continuous.scheduler import ProbeScheduler
from wsmon.continuous.shard import shard_of
from wsmon.continuous.state_file import RuntimeChanges, load_changes, save_changes
from wsmon.continuous.store import Store, TargetState
from wsmon.errors import ConfigError, UnknownTarget
from wsmon.metrics.exporter import ExporterMetrics

__all__ = ["Monitor", "Runner"]

log = structlog.get_logger("wsmon")


class Runner(Protocol):
    """What runs the targets of one mode."""

    def apply_settings(self, settings: Settings) -> None:
        """The ``[settings]`` in force (at start and after each reload)."""

    def sample_interval(self, target: Target) -> float:
        """How often a latency sample of ``target`` comes (sizes its rolling window)."""

    def start(self, target: Target, state: TargetState) -> None: ...

    def halt(self, name: str, code: int) -> None:
        """Stop running ``name``; connections are closed with ``code``."""

    def reconnect(self, name: str) -> bool:
        """Connect again now, skipping the backoff; False where the mode has nothing to reconnect."""

    async def stop(self) -> None:
        """Stop everything for good (shutdown): connections get 1001, probes are cancelled."""


class Monitor:
    def __init__(
        self,
        live: LiveConfig,
        metrics: ExporterMetrics,
        *,
        shard: tuple[int, int] = (0, 1),
        state_path: Path | None = None,
    ) -> None:
        self.live = live
        self.metrics = metrics
        self.store = Store()
        self.started = False
        self._shard = shard
        self.state_path = state_path
        self.changes = load_changes(state_path)
        self.runtime_names: set[str] = set()  # targets added from the dashboard
        settings = live.current.settings
        self._runners: Mapping[Mode, Runner] = {
            Mode.PROBE: ProbeScheduler(settings.max_in_flight, metrics.scheduler_lag.observe, metrics.in_flight.inc),
            Mode.PERSISTENT: PersistentConnections(settings, metrics.scheduler_lag.observe),
        }
        self._targets: dict[str, Target] = {}  # every target of this replica, paused ones too
        metrics.shard.labels(str(shard[0]), str(shard[1])).set(1)
        live.on_change(self._reloaded)

    def start(self) -> None:
        """Start running the targets (once wsmon listens: the bundled config watches wsmon itself)."""
        self._apply(self.live.current)
        self.started = True

    # --- what should run -------------------------------------------------------------------

    def _runtime_target(self, table: dict[str, Any], config: Config) -> Target:
        if "endpoint" in table:  # by endpoint name: base_url + name, with the base_url in force
            rest = {k: v for k, v in table.items() if k != "endpoint"}
            if "url" in rest:
                raise ConfigError("dashboard: give url or endpoint, not both")
            table = {**rest, "url": config.web.endpoint_url(table["endpoint"], "dashboard")}
        # No ${VAR} expansion: a dashboard user must not be able to read wsmon's environment.
        return parse_target_table(table, 1, "dashboard", config.settings, config.modules, {})

    def _wanted(self, config: Config) -> dict[str, Target]:
        """The targets this replica runs (scrape-mode ones only answer ``/probe``)."""
        # A config target removed from the dashboard stays hidden (its name may be reused there).
        runs = self._runners.keys()
        targets = {t.name: t for t in config.targets if t.name not in self.changes.removed and t.mode in runs}
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
            if target.mode in runs:
                targets[target.name] = target
                self.runtime_names.add(target.name)
        index, count = self._shard
        return {n: t for n, t in targets.items() if count == 1 or shard_of(n, count) == index}

    def _apply(self, config: Config) -> None:
        wanted = self._wanted(config)
        for name, old in list(self._targets.items()):
            if wanted.get(name) != old:
                self._drop(name, code=1000)
        for runner in self._runners.values():
            runner.apply_settings(config.settings)
        for name, target in wanted.items():
            if name not in self._targets:
                self._targets[name] = target
                interval = self._runners[target.mode].sample_interval(target)
                self.store.add(target, config.settings.window, interval)
                if name not in self.changes.paused:
                    self._start(name)
        for mode in self._runners:
            self.metrics.targets.labels(mode).set(sum(t.mode is mode for t in self._targets.values()))

    def _start(self, name: str) -> None:
        target, state = self._targets[name], self.store.get(name)
        assert state is not None
        state.paused = False
        self._runners[target.mode].start(target, state)

    def _halt(self, name: str, code: int) -> None:
        """Stop probing or close the connection; the target and its history stay."""
        self._runners[self._targets[name].mode].halt(name, code)

    def _drop(self, name: str, code: int) -> None:
        self._halt(name, code)
        del self._targets[name]
        self.store.remove(name)

    def _reloaded(self, config: Config) -> None:
        before = set(self._targets)
        self._apply(config)
        after = set(self._targets)
        log.info("config reloaded", added=sorted(after - before), removed=sorted(before - after), targets=len(after))

    # --- runtime changes (the dashboard) ----------------------------------------------------

    def _save(self, changes: RuntimeChanges) -> None:
        """Write ``changes`` to the state file, then make them the ones in force.

        OSError (a read-only or full filesystem) leaves everything as it was: a change that
        is not on disk would take effect at the next reload and come back at a restart.
        """
        save_changes(self.state_path, changes)
        self.changes = changes

    def _known(self, name: str) -> Target:
        target = self._targets.get(name)
        if target is None:
            raise UnknownTarget(name)
        return target

    def add(self, table: dict[str, Any]) -> Target:
        """Add a target (validated like the config file's); it persists across restarts.

        ConfigError when it is not valid, OSError when it could not be saved: nothing changed."""
        config = self.live.current
        target = self._runtime_target(table, config)
        if target.mode not in self._runners:
            raise ConfigError("dashboard: a scrape-mode target belongs in the config file (the dashboard runs targets)")
        configured = config.target(target.name) is not None and target.name not in self.changes.removed
        if target.name in self._targets or configured:
            raise ConfigError(f"dashboard: target {target.name!r} exists already; choose another name")
        self._save(replace(self.changes, added=[*self.changes.added, dict(table)]))
        self._apply(self.live.current)
        log.info("target added at runtime", target=target.name, mode=str(target.mode))
        return target

    def remove(self, name: str) -> None:
        """Remove a target (a configured one stays hidden); OSError when it could not be saved."""
        self._known(name)
        added, removed = self.changes.added, self.changes.removed
        if name in self.runtime_names:
            added = [t for t in added if t.get("name") != name]
        else:
            removed = [*removed, name]
        paused = [n for n in self.changes.paused if n != name]
        self._save(RuntimeChanges(added=added, paused=paused, removed=removed))
        self._apply(self.live.current)
        log.info("target removed at runtime", target=name)

    def pause(self, name: str) -> None:
        """Stop probing it, or close its connection and keep it closed (no auto-reconnect);
        OSError when it could not be saved."""
        self._known(name)
        if name in self.changes.paused:
            return
        self._save(replace(self.changes, paused=[*self.changes.paused, name]))
        self._halt(name, code=1000)
        state = self.store.get(name)
        assert state is not None
        state.paused = True
        log.info("target paused", target=name)

    def reconnect(self, name: str) -> None:
        """Resume a paused target, or reconnect a persistent one now (skipping its backoff);
        OSError when resuming could not be saved."""
        target = self._known(name)
        if name in self.changes.paused:
            self._save(replace(self.changes, paused=[n for n in self.changes.paused if n != name]))
            self._start(name)
            log.info("target resumed", target=name)
        elif self._runners[target.mode].reconnect(name):
            log.info("reconnect requested", target=name)

    # --- shutdown --------------------------------------------------------------------------

    async def stop(self) -> None:
        """Close every persistent connection with 1001 (going away), stop probing."""
        await asyncio.gather(*(runner.stop() for runner in self._runners.values()))
