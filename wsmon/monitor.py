"""Continuous mode: the configured targets, kept probing or connected, reloadable.

The Monitor turns a Config into running work (probe-mode timers, persistent connections) and
applies a new Config as a difference: unchanged targets keep their connections and history,
changed ones restart, removed ones close, new ones start.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import structlog

from wsmon.config import Config, Target, load_config
from wsmon.errors import ConfigError
from wsmon.exporter_metrics import ExporterMetrics
from wsmon.persistent import PersistentTarget, PingWheel
from wsmon.scheduler import ProbeScheduler
from wsmon.shard import shard_of
from wsmon.store import Store

__all__ = ["Monitor"]

log = structlog.get_logger("wsmon")

CLOSE_GRACE = 2.0  # seconds peers get to answer our close frames on shutdown


class Monitor:
    def __init__(
        self,
        config: Config,
        metrics: ExporterMetrics,
        *,
        config_path: str | None = None,
        overrides: dict[str, Any] | None = None,
        shard: tuple[int, int] = (0, 1),
    ) -> None:
        self.config = config
        self.metrics = metrics
        self.store = Store()
        self._path = config_path
        self._overrides = overrides or {}
        self._shard = shard
        self._scheduler = ProbeScheduler(
            config.settings.max_in_flight, metrics.scheduler_lag.observe, metrics.in_flight.inc
        )
        self._wheel = PingWheel(config.settings.ping_interval, metrics.scheduler_lag.observe)
        self._persistent: dict[str, PersistentTarget] = {}
        self._running: dict[str, Target] = {}
        metrics.shard.labels(str(shard[0]), str(shard[1])).set(1)
        self._apply(config)
        self._reloaded()

    def _mine(self, config: Config) -> dict[str, Target]:
        index, count = self._shard
        return {t.name: t for t in config.targets if count == 1 or shard_of(t.name, count) == index}

    def _apply(self, config: Config) -> None:
        wanted = self._mine(config)
        for name, old in list(self._running.items()):
            if wanted.get(name) != old:
                self._stop_target(name, code=1000)
        settings = config.settings
        self._wheel.set_interval(settings.ping_interval)
        for name, target in wanted.items():
            if name in self._running:
                continue
            sample_interval = settings.ping_interval if target.mode == "persistent" else target.interval
            state = self.store.add(target, settings.window, sample_interval)
            if target.mode == "persistent":
                runner = PersistentTarget(
                    target, state, self._wheel, settings.reconnect_backoff, settings.reconnect_backoff_max
                )
                self._persistent[name] = runner
                runner.start()
            else:
                self._scheduler.add(target, state)
            self._running[name] = target
        self.config = config
        for mode in ("probe", "persistent"):
            self.metrics.targets.labels(mode).set(sum(t.mode == mode for t in self._running.values()))

    def _stop_target(self, name: str, code: int) -> None:
        target = self._running.pop(name)
        if target.mode == "persistent":
            self._persistent.pop(name).begin_stop(code)
        else:
            self._scheduler.remove(name)
        self.store.remove(name)

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
        before = set(self._running)
        self._apply(config)
        self._reloaded()
        after = set(self._running)
        log.info("config reloaded", added=sorted(after - before), removed=sorted(before - after), targets=len(after))
        return True

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
