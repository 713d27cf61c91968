"""The ``wsmon`` command: ``serve``, ``check`` and ``config check``."""

from __future__ import annotations

import contextlib
import json
import logging
import time
from dataclasses import replace
from pathlib import Path
from typing import Annotated, Any

import typer

from wsmon import __version__
from wsmon.config.file import Config, Mode, Settings, load_config
from wsmon.config.push import parse_push
from wsmon.config.validate import duration_in_bounds
from wsmon.continuous.shard import parse_shard
from wsmon.continuous.state_file import check_writable
from wsmon.errors import ConfigError, TargetError
from wsmon.eventloop import run
from wsmon.logs import LogFormat, clean, configure_logging
from wsmon.probe.log import ProbeLog
from wsmon.probe.prober import probe
from wsmon.probe.report import probe_json, probe_line, probe_report, summary_json, summary_lines
from wsmon.probe.result import ProbeResult
from wsmon.redact import secrets, userinfo_secrets
from wsmon.ws.url import parse_target

__all__ = ["app", "main"]

app = typer.Typer(
    help="wsmon: WebSocket endpoint monitor for Prometheus and VictoriaMetrics.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,  # rich tracebacks print local variables: URLs, tokens
)
config_app = typer.Typer(help="Work with config files.", no_args_is_help=True)
app.add_typer(config_app, name="config")

EXIT_UP, EXIT_DOWN, EXIT_USAGE = 0, 1, 2


def _fail_usage(message: str) -> typer.Exit:
    typer.echo(f"wsmon: error: {clean(message)}", err=True)
    return typer.Exit(EXIT_USAGE)


def _duration(value: str) -> float:
    try:
        return duration_in_bounds(value)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None


def _load(path: str | None) -> Config:
    return Config() if path is None else load_config(path)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"wsmon {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version.")
    ] = False,
) -> None:
    pass


@app.command(name="serve")
def serve_command(
    config: Annotated[
        str | None,
        typer.Option(
            "--config", help="Config file (TOML) with targets to monitor; without it wsmon is a pure /probe exporter."
        ),
    ] = None,
    listen_address: Annotated[
        str, typer.Option("--web.listen-address", help="Address to listen on, host:port.")
    ] = ":9095",
    telemetry_path: Annotated[str, typer.Option("--web.telemetry-path", help="Path for the metrics.")] = "/metrics",
    probe_path: Annotated[str, typer.Option("--web.probe-path", help="Path of the probe endpoint.")] = "/probe",
    timeout: Annotated[
        str | None,
        typer.Option("--timeout", help="Longest a probe may take (Go duration) [default: 10s, or the config's]."),
    ] = None,
    timeout_offset: Annotated[
        str, typer.Option("--timeout-offset", help="Subtracted from the scraper's timeout header.")
    ] = "500ms",
    ping_interval: Annotated[
        str | None,
        typer.Option("--ping.interval", help="Ping period of persistent connections [default: 1s, or the config's]."),
    ] = None,
    state_file: Annotated[
        str | None,
        typer.Option(
            "--state.file", help="Where dashboard changes persist [default: <config>.state.json beside the config]."
        ),
    ] = None,
    shard: Annotated[
        str,
        typer.Option("--shard", help="I/N (or I-of-N): this replica probes shard I (from 0) of N of the targets."),
    ] = "0/1",
    shard_ports: Annotated[
        bool,
        typer.Option(
            "--web.shard-ports",
            help="Listen on the --web.listen-address port plus the shard index I (shards on one host).",
        ),
    ] = False,
    push_url: Annotated[
        str | None, typer.Option("--push.url", help="Push the targets' series to this base URL (one more [[push]]).")
    ] = None,
    push_kind: Annotated[
        str,
        typer.Option(
            "--push.kind",
            help="victoriametrics (vmagent too), pushgateway or remote_write (--push.url is then the write URL).",
        ),
    ] = "victoriametrics",
    push_interval: Annotated[str, typer.Option("--push.interval", help="Push period.")] = "15s",
    push_job: Annotated[str, typer.Option("--push.job", help="The job label of pushed series.")] = "wsmon",
    push_timeout: Annotated[
        str | None, typer.Option("--push.timeout", help="Deadline of one push [default: 5s, or half the interval].")
    ] = None,
    max_probes: Annotated[
        int | None,
        typer.Option(
            "--web.max-probes",
            min=1,
            help="/probe requests run at once; more are answered 503 [default: an eighth of the open-files limit].",
        ),
    ] = None,
    max_connections: Annotated[
        int | None,
        typer.Option(
            "--web.max-connections",
            min=1,
            help="Open HTTP connections at most; more are answered 503 [default: a quarter of the open-files limit].",
        ),
    ] = None,
    max_connections_per_client: Annotated[
        int | None,
        typer.Option(
            "--web.max-connections-per-client",
            min=1,
            help="Open connections one client address may hold [default: an eighth of the open-files limit].",
        ),
    ] = None,
    read_timeout: Annotated[
        str,
        typer.Option("--web.read-timeout", help="Longest wait for a request's headers, then for its body."),
    ] = "10s",
    debug: Annotated[bool, typer.Option("--debug", help="Log every probe's phases.")] = False,
    log_format: Annotated[str, typer.Option("--log.format", help="Log format: console or json.")] = "console",
) -> None:
    """Serve /probe and /metrics; with --config, also monitor the configured targets continuously."""
    # Here, not at the top: `wsmon check` and `wsmon config check` need none of the web stack.
    from wsmon.serve import parse_listen_address, raise_fd_limit, serve
    from wsmon.web.limits import WebLimits

    fmt = _log_format(log_format)
    configure_logging(logging.DEBUG if debug else logging.INFO, fmt)
    overrides: dict[str, Any] = {}  # flags win over [settings]
    if timeout is not None:
        overrides["timeout"] = _duration(timeout)
    if ping_interval is not None:
        overrides["ping_interval"] = _duration(ping_interval)
    try:
        host, port = parse_listen_address(listen_address)
        shard_index = parse_shard(shard)
        if shard_ports:
            port += shard_index[0]
            if port > 65535:
                raise ValueError(f"--web.shard-ports: port {port} of shard {shard_index[0]} is beyond 65535")
        if not telemetry_path.startswith("/") or not probe_path.startswith("/"):
            raise ValueError("--web.telemetry-path and --web.probe-path must start with /")
        loaded = load_config(config, overrides=overrides) if config else Config(settings=Settings(**overrides))
        flag_pushes = (
            ()
            if push_url is None
            else (
                parse_push(
                    {
                        "kind": push_kind,
                        "url": push_url,
                        "interval": push_interval,
                        "job": push_job,
                        **({"timeout": push_timeout} if push_timeout else {}),
                    },
                    1,
                    "--push.url",
                ),
            )
        )
    except (ValueError, ConfigError) as exc:
        raise _fail_usage(str(exc)) from None
    state_path = Path(state_file) if state_file else (Path(f"{config}.state.json") if config else None)
    # Where no dashboard change could be saved, wsmon refuses to start rather than refuse each
    # change later (checked when the dashboard is on, or the place was asked for).
    if state_path is not None and (state_file or loaded.web.dashboard_enabled):
        try:
            check_writable(state_path)
        except OSError as exc:
            raise _fail_usage(
                f"cannot write the state file {state_path} ({exc.strerror or type(exc).__name__}): "
                "dashboard changes could not be saved; choose a writable place with --state.file"
            ) from None
    web_read_timeout = _duration(read_timeout)
    if web_read_timeout <= 0:
        raise _fail_usage("--web.read-timeout must be greater than 0")
    raise_fd_limit()
    limits = WebLimits.for_open_files(
        max_probes=max_probes,
        max_connections=max_connections,
        max_connections_per_client=max_connections_per_client,
        read_timeout=web_read_timeout,
    )
    run(
        lambda: serve(
            loaded,
            host,
            port,
            config_path=config,
            overrides=overrides,
            timeout_offset=_duration(timeout_offset),
            debug=debug,
            telemetry_path=telemetry_path,
            probe_path=probe_path,
            shard=shard_index,
            extra_pushes=flag_pushes,
            state_path=state_path,
            limits=limits,
        )
    )


def _log_format(value: str) -> LogFormat:
    if value not in ("console", "json"):
        raise _fail_usage(f"--log.format must be console or json, not {value!r}")
    return "json" if value == "json" else "console"


# Headers whose values are credentials: registered as secrets, never shown.
_SECRET_HEADERS = frozenset({"authorization", "proxy-authorization", "cookie"})


def _header(index: int, text: str) -> tuple[str, str]:
    name, sep, value = text.partition(":")
    if not sep or not name.strip():
        # Nothing of the text is shown: "Authorization=Bearer <token>" is what a typo looks like.
        raise _fail_usage(f"--header #{index} has no 'Name:' before its value; write it as 'Name: value'")
    name, value = name.strip(), value.strip()
    if name.lower() in _SECRET_HEADERS:
        # "Bearer <token>", and the token alone: either may be quoted by an error.
        secrets.add([value, value.partition(" ")[2].strip()])
    return name, value


@app.command(name="check")
def check_command(
    url: Annotated[str, typer.Argument(help="ws:// or wss:// URL to probe.")],
    module: Annotated[str, typer.Option("--module", "-m", help="Module: ping, connect or one of --config.")] = "ping",
    config: Annotated[str | None, typer.Option("--config", help="Config file with [modules.*].")] = None,
    ping: Annotated[
        bool | None, typer.Option("--ping/--no-ping", help="Override the module: ping or connect only.")
    ] = None,
    pings: Annotated[int | None, typer.Option("--pings", min=1, max=100, help="Pings per probe.")] = None,
    timeout: Annotated[str, typer.Option("--timeout", "-t", help="Deadline of each probe.")] = "10s",
    header: Annotated[
        list[str] | None,
        typer.Option("--header", "-H", help="Extra request header 'Name: value' (repeatable)."),
    ] = None,
    subprotocol: Annotated[
        list[str] | None, typer.Option("--subprotocol", help="Offer a subprotocol (repeatable).")
    ] = None,
    insecure: Annotated[bool, typer.Option("--insecure", "-k", help="Skip TLS certificate verification.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON (one object per line).")] = False,
    count: Annotated[int, typer.Option("--count", "-c", min=1, help="Probe N times, like ping.")] = 1,
    interval: Annotated[str, typer.Option("--interval", "-i", help="Pause between probes with --count.")] = "1s",
    debug: Annotated[bool, typer.Option("--debug", help="Log each phase to stderr.")] = False,
) -> None:
    """Probe a URL once (or --count times) and exit 0 if up, 1 if down, 2 on bad usage."""
    configure_logging(logging.DEBUG if debug else logging.WARNING)
    deadline, pause = _duration(timeout), _duration(interval)
    try:
        loaded = _load(config)
        target = parse_target(url).redacted
    except (ConfigError, TargetError) as exc:
        raise _fail_usage(str(exc)) from None
    secrets.add(userinfo_secrets(url))  # a password given on the command line is a credential
    chosen = loaded.modules.get(module)
    if chosen is None:
        raise _fail_usage(f"unknown module {module!r}: known modules are {', '.join(sorted(loaded.modules))}")
    overrides: dict[str, object] = {}
    if ping is not None:
        overrides["ping"] = ping
    if pings is not None:
        overrides["pings"] = pings
    if header:
        overrides["headers"] = (*chosen.headers, *(_header(i, h) for i, h in enumerate(header, 1)))
    if subprotocol:
        overrides["subprotocols"] = tuple(subprotocol)
    if insecure:
        overrides["tls"] = replace(chosen.tls, insecure_skip_verify=True)
    chosen = chosen.with_overrides(**overrides)
    deadline = min(deadline, chosen.timeout) if chosen.timeout else deadline

    results: list[ProbeResult] = []
    started = time.monotonic()

    async def probe_all() -> None:
        import asyncio

        for seq in range(1, count + 1):
            if seq > 1:
                await asyncio.sleep(pause)
            log = ProbeLog(target, keep=False, emit=True) if debug else None
            result = await probe(url, chosen, deadline, log=log)
            results.append(result)
            if as_json:
                typer.echo(json.dumps(probe_json(target, module, result)))
            elif count == 1:
                typer.echo("\n".join(probe_report(target, module, result)))
            else:
                typer.echo(probe_line(seq, result))

    with contextlib.suppress(KeyboardInterrupt):  # Ctrl-C: the summary so far follows
        run(probe_all)
    if count > 1 or len(results) != count:
        elapsed = time.monotonic() - started
        if as_json:
            typer.echo(json.dumps(summary_json(target, results, elapsed)))
        else:
            typer.echo("\n".join(summary_lines(target, results, elapsed)))
    all_up = bool(results) and all(r.success for r in results)
    raise typer.Exit(EXIT_UP if all_up else EXIT_DOWN)


@app.command(name="hash-password")
def hash_password_command() -> None:
    """Read a password (twice, not echoed) and print its bcrypt hash for [web.users.<name>]."""
    from wsmon.web.auth import hash_password  # bcrypt: only this command needs it

    password = typer.prompt("Password", hide_input=True, confirmation_prompt=True)
    if len(password) < 8:
        raise _fail_usage("use a password of at least 8 characters")
    try:
        typer.echo(hash_password(password))
    except ValueError as exc:
        raise _fail_usage(str(exc)) from None


@config_app.command(name="check")
def config_check_command(path: Annotated[str, typer.Argument(help="Config file to validate.")]) -> None:
    """Validate a config file: exit 0 if valid, 2 with the first problem otherwise."""
    try:
        loaded = load_config(path)
    except ConfigError as exc:
        raise _fail_usage(str(exc)) from None
    except Exception as exc:
        # load_config makes every problem of the file a ConfigError; anything else is a fault of
        # wsmon's, and still gets one line and exit 2 (a traceback may quote the file).
        raise _fail_usage(f"{path}: cannot load: {type(exc).__name__} (a fault of wsmon's; please report)") from None
    counts = ", ".join(f"{sum(t.mode is mode for t in loaded.targets)} {mode}" for mode in Mode)
    typer.echo(f"{path}: valid ({len(loaded.modules)} modules, {len(loaded.targets)} targets: {counts})")


def main() -> None:
    app()
