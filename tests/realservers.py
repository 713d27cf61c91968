"""The real servers wsmon works with, run in the foreground on 127.0.0.1 for a test.

VictoriaMetrics, vmagent, the Pushgateway and Prometheus (Debian bookworm's packages, installed
by ``scripts/install-system-deps``), and ``wsmon serve`` itself as a subprocess. Each is an
async context manager: it starts the program on a free port with a temporary directory, waits
until it answers (``/health`` or ``/-/ready``), yields a ``Running`` and always stops it again
(SIGTERM, then SIGKILL after a timeout). The programs log to a file, never to a pipe nobody
reads: a full pipe would stall them.

``WsmonProcess`` is ``wsmon_serve``'s twin for plain ``def`` tests (Playwright's sync API,
module-scoped fixtures): the same command line, log file and timeouts, restartable on its port.
``web_user`` writes a login into a config for either.

Reading back: ``vm_export`` (VictoriaMetrics' ``/internal/force_flush`` then ``/api/v1/export``:
``/api/v1/query`` hides samples newer than 30 s), ``prom_query`` (Prometheus' ``/api/v1/query``)
and ``scrape`` (a text exposition, e.g. wsmon's ``/metrics`` or the Pushgateway's), with
``sample_value`` (fails naming the series if it is missing) and ``has_sample`` to look in it.
``until`` polls a check; every duration is a multiple of ``MS``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.servers import HOST, MS, go_duration, refused_port
from wsmon.web.auth import hash_password

__all__ = [
    "Running",
    "Sample",
    "Series",
    "WsmonProcess",
    "free_port",
    "has_sample",
    "needs",
    "prom_query",
    "prometheus",
    "pushgateway",
    "sample_value",
    "scrape",
    "until",
    "victoria_metrics",
    "vm_export",
    "vmagent",
    "web_user",
    "wsmon_serve",
]

START_TIMEOUT = 15_000 * MS  # what a server gets to answer its health check
STOP_TIMEOUT = 10_000 * MS  # between SIGTERM and SIGKILL
READY_POLL = 20 * MS  # between two health checks of a starting server

T = TypeVar("T")


def needs(*binaries: str) -> pytest.MarkDecorator:
    """Skip when a server's binary is missing and we cannot install it (not root).

    As root, ``make test`` installs them first (``scripts/install-system-deps``); a missing
    binary then fails the test with the command to run.
    """
    missing = [b for b in binaries if shutil.which(b) is None]
    return pytest.mark.skipif(
        bool(missing) and os.geteuid() != 0,
        reason=f"{', '.join(missing)} not installed (scripts/install-system-deps installs it when run as root)",
    )


def free_port() -> int:
    return refused_port()


class _Listening:
    """Where a server listens and logs."""

    port: int
    log_path: Path

    @property
    def base(self) -> str:
        return f"http://{HOST}:{self.port}"

    @property
    def address(self) -> str:
        return f"{HOST}:{self.port}"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def _not_ready(self, name: str, path: str, returncode: int | None) -> AssertionError:
        return AssertionError(
            f"{name} did not answer {path} on port {self.port} (exit code {returncode}):\n{self.log()[-3000:]}"
        )


@dataclass
class Running(_Listening):
    """A started server: its process, port and log file."""

    name: str
    process: asyncio.subprocess.Process
    port: int
    log_path: Path

    async def stop(self, sig: int = signal.SIGTERM, timeout: float = STOP_TIMEOUT) -> int:
        """Signal the process, wait for it (SIGKILL after ``timeout``); its exit code."""
        if self.process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self.process.send_signal(sig)
            try:
                await asyncio.wait_for(self.process.wait(), timeout)
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    self.process.kill()
        return await self.process.wait()


def _binary(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.fail(f"{name} is not installed: run scripts/install-system-deps (as root)")
    return path


@contextlib.asynccontextmanager
async def _running(
    name: str,
    argv: list[str],
    port: int,
    ready_path: str,
    log_path: Path,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
) -> AsyncIterator[Running]:
    """Start ``argv``, wait until ``GET ready_path`` answers 200, stop it on exit."""
    with log_path.open("ab") as log_file:
        process = await asyncio.create_subprocess_exec(
            *argv,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=log_file,
            stderr=asyncio.subprocess.STDOUT,
            env={**os.environ, **(env or {})},
            cwd=cwd,
        )
    running = Running(name, process, port, log_path)
    try:
        await _wait_ready(running, ready_path)
        yield running
    finally:
        await running.stop()


async def _wait_ready(running: Running, path: str) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + START_TIMEOUT
    async with httpx.AsyncClient(trust_env=False, timeout=1000 * MS) as client:
        while loop.time() < deadline:
            if running.process.returncode is not None:
                break
            try:
                if (await client.get(running.base + path)).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            await asyncio.sleep(READY_POLL)
    raise running._not_ready(running.name, path, running.process.returncode)


def _workdir(tmp_path: Path, name: str) -> Path:
    directory = tmp_path / name
    directory.mkdir(parents=True, exist_ok=True)
    return directory


# --- the servers ---------------------------------------------------------------------------


def victoria_metrics(
    tmp_path: Path, port: int | None = None, basic_auth: tuple[str, str] | None = None
) -> contextlib.AbstractAsyncContextManager[Running]:
    """Single-node VictoriaMetrics (it takes ``/api/v1/import/prometheus`` and remote write).

    With ``basic_auth``, every endpoint but ``/health`` wants that user and password.
    """
    port = port or free_port()
    directory = _workdir(tmp_path, f"victoria-metrics-{port}")
    argv = [
        _binary("victoria-metrics"),
        f"-httpListenAddr={HOST}:{port}",
        f"-storageDataPath={directory / 'data'}",
        "-loggerLevel=WARN",
    ]
    if basic_auth is not None:
        argv += [f"-httpAuth.username={basic_auth[0]}", f"-httpAuth.password={basic_auth[1]}"]
    return _running("victoria-metrics", argv, port, "/health", directory / "log")


def vmagent(
    tmp_path: Path, remote_write: str, scrape_configs: list[dict[str, Any]]
) -> contextlib.AbstractAsyncContextManager[Running]:
    """vmagent scraping ``scrape_configs`` and remote-writing to ``remote_write`` (a base URL)."""
    port = free_port()
    directory = _workdir(tmp_path, f"vmagent-{port}")
    config = directory / "scrape.yml"
    config.write_text(json.dumps({"scrape_configs": scrape_configs}, indent=2))  # JSON is YAML
    argv = [
        _binary("vmagent"),
        f"-httpListenAddr={HOST}:{port}",
        f"-remoteWrite.url={remote_write}/api/v1/write",
        f"-remoteWrite.tmpDataPath={directory / 'remotewrite'}",
        f"-remoteWrite.flushInterval={go_duration(200 * MS)}",
        f"-promscrape.config={config}",
        "-loggerLevel=WARN",
    ]
    return _running("vmagent", argv, port, "/health", directory / "log")


def pushgateway(tmp_path: Path) -> contextlib.AbstractAsyncContextManager[Running]:
    """A Pushgateway without persistence."""
    port = free_port()
    directory = _workdir(tmp_path, f"pushgateway-{port}")
    argv = [_binary("prometheus-pushgateway"), f"--web.listen-address={HOST}:{port}", "--persistence.file="]
    return _running("pushgateway", argv, port, "/-/ready", directory / "log")


def prometheus(
    tmp_path: Path, scrape_configs: list[dict[str, Any]], *, receiver: bool = False
) -> contextlib.AbstractAsyncContextManager[Running]:
    """Prometheus with its own TSDB, scraping ``scrape_configs``; with ``receiver``, also taking
    remote write on ``/api/v1/write``."""
    port = free_port()
    directory = _workdir(tmp_path, f"prometheus-{port}")
    config = directory / "prometheus.yml"
    settings = {"global": {"scrape_interval": go_duration(1000 * MS)}, "scrape_configs": scrape_configs}
    config.write_text(json.dumps(settings, indent=2))
    argv = [
        _binary("prometheus"),
        f"--config.file={config}",
        f"--storage.tsdb.path={directory / 'data'}",
        f"--web.listen-address={HOST}:{port}",
        "--log.level=warn",
        *(["--web.enable-remote-write-receiver"] if receiver else []),
    ]
    return _running("prometheus", argv, port, "/-/ready", directory / "log", cwd=directory)


def _wsmon_argv(port: int, config: Path | None, args: Iterable[str]) -> list[str]:
    argv = [sys.executable, "-m", "wsmon", "serve", "--web.listen-address", f"{HOST}:{port}", *args]
    if config is not None:
        argv += ["--config", str(config)]
    return argv


def wsmon_serve(
    tmp_path: Path, config: Path | None, *args: str, env: Mapping[str, str] | None = None, port: int | None = None
) -> contextlib.AbstractAsyncContextManager[Running]:
    """``wsmon serve`` (this checkout's) on ``port`` or a free one; extra flags in ``args``."""
    port = port or free_port()
    log_path = _workdir(tmp_path, f"wsmon-{port}") / "log"
    return _running("wsmon", _wsmon_argv(port, config, args), port, "/-/ready", log_path, env=env)


class WsmonProcess(_Listening):
    """``wsmon serve`` as ``wsmon_serve`` starts it, for tests without an event loop.

    ``start()`` waits until ``/-/ready`` answers; ``stop()`` sends SIGTERM (SIGKILL after a
    timeout) and returns the exit code; ``start()`` again runs a new process on the same port,
    appending to the same log. As a context manager: started on entry, stopped on exit.
    """

    def __init__(
        self,
        tmp_path: Path,
        config: Path | None,
        *args: str,
        env: Mapping[str, str] | None = None,
        port: int | None = None,
    ) -> None:
        self.port = port or free_port()
        self.log_path = _workdir(tmp_path, f"wsmon-{self.port}") / "log"
        self.argv = _wsmon_argv(self.port, config, args)
        self.env = dict(env or {})
        self.process: subprocess.Popen[bytes] | None = None
        self.started_at = 0.0  # time.monotonic() of the last start()

    @property
    def running(self) -> bool:
        """Started and not stopped yet (it may have exited on its own)."""
        return self.process is not None

    def start(self) -> None:
        assert self.process is None, "wsmon is running already"
        self.started_at = time.monotonic()
        with self.log_path.open("ab") as log_file:
            self.process = subprocess.Popen(
                self.argv,
                stdin=subprocess.DEVNULL,
                stdout=log_file,
                stderr=subprocess.STDOUT,
                env={**os.environ, **self.env},
            )
        deadline = time.monotonic() + START_TIMEOUT
        with httpx.Client(trust_env=False, timeout=1000 * MS) as client:
            while time.monotonic() < deadline and self.process.poll() is None:
                with contextlib.suppress(httpx.TransportError):
                    if client.get(self.base + "/-/ready").status_code == 200:
                        return
                time.sleep(READY_POLL)
        returncode = self.process.poll()
        self.stop()
        raise self._not_ready("wsmon", "/-/ready", returncode)

    def cpu_seconds(self) -> float:
        """CPU time the process has used so far (user + system, all its threads)."""
        assert self.process is not None, "wsmon is not running"
        fields = Path(f"/proc/{self.process.pid}/stat").read_text().rpartition(")")[2].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime, stime

    def stop(self, sig: int = signal.SIGTERM, timeout: float = STOP_TIMEOUT) -> int:
        """Signal the process, wait for it (SIGKILL after ``timeout``); its exit code."""
        process, self.process = self.process, None
        assert process is not None, "wsmon is not running"
        process.send_signal(sig)  # nothing once it has exited
        try:
            return process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            return process.wait()

    def __enter__(self) -> WsmonProcess:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self.running:
            self.stop()


def web_user(name: str, password: str, role: str) -> str:
    """A ``[web.users.<name>]`` table: a login for wsmon's dashboard and API."""
    return f'[web.users.{name}]\npassword_hash = "{hash_password(password)}"\nrole = "{role}"\n'


# --- reading back ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Series:
    """One series of VictoriaMetrics' ``/api/v1/export``."""

    name: str
    labels: dict[str, str]  # without __name__
    values: list[float]
    timestamps: list[int]

    @property
    def last(self) -> float:
        return self.values[self.timestamps.index(max(self.timestamps))]


async def vm_export(
    client: httpx.AsyncClient, vm: Running, match: str = '{__name__=~".+"}'
) -> tuple[list[Series], str]:
    """Everything VictoriaMetrics holds that matches (after a flush), and the raw answer."""
    (await client.get(f"{vm.base}/internal/force_flush")).raise_for_status()
    response = await client.get(f"{vm.base}/api/v1/export", params={"match[]": match})
    response.raise_for_status()
    series = []
    for line in response.text.splitlines():
        if line.strip():
            item = json.loads(line)
            labels = dict(item["metric"])
            name = labels.pop("__name__")
            series.append(Series(name, labels, [float(v) for v in item["values"]], item["timestamps"]))
    return series, response.text


async def prom_query(client: httpx.AsyncClient, prom: Running, query: str) -> list[tuple[dict[str, str], float]]:
    """An instant query: (labels with __name__, value) per result."""
    response = await client.get(f"{prom.base}/api/v1/query", params={"query": query})
    response.raise_for_status()
    answer = response.json()
    assert answer["status"] == "success", answer
    return [(r["metric"], float(r["value"][1])) for r in answer["data"]["result"]]


@dataclass(frozen=True)
class Sample:
    name: str
    labels: dict[str, str]
    value: float


async def scrape(client: httpx.AsyncClient, url: str) -> list[Sample]:
    """The samples of a text exposition (e.g. wsmon's /metrics, the Pushgateway's)."""
    response = await client.get(url)
    response.raise_for_status()
    return [
        Sample(s.name, dict(s.labels), float(s.value))
        for family in text_string_to_metric_families(response.text)
        for s in family.samples
    ]


def _matching(samples: Iterable[Sample], name: str, labels: Mapping[str, str]) -> list[float]:
    return [sample.value for sample in samples if sample.name == name and sample.labels == labels]


def sample_value(samples: Iterable[Sample], name: str, **labels: str) -> float:
    """The value of the one sample with exactly this name and these labels.

    A missing series fails (AssertionError naming it), never reads as 0: a test that expects
    a series to be absent says so with ``has_sample``.
    """
    found = _matching(samples, name, labels)
    assert len(found) == 1, f"{len(found)} samples of {name}{labels}, not 1"
    return found[0]


def has_sample(samples: Iterable[Sample], name: str, **labels: str) -> bool:
    """Whether there is a sample with exactly this name and these labels."""
    return bool(_matching(samples, name, labels))


async def until(check: Callable[[], Awaitable[T | None]], timeout: float, what: str, step: float = 250 * MS) -> T:
    """Call ``check`` until its answer is truthy and return it; fail after ``timeout`` seconds
    (a multiple of ``MS``).

    ``check`` may also raise AssertionError to say "not yet": the last one is reported.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    last: object = None
    while True:
        try:
            answer = await check()
            if answer:
                return answer
            last = answer
        except AssertionError as exc:
            last = exc
        if loop.time() >= deadline:
            raise AssertionError(f"{what}: not within {timeout:.1f}s; last: {last}")
        await asyncio.sleep(step)
