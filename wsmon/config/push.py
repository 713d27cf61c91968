"""``[[push]]`` tables and ``--push.*`` flags: where continuous mode sends its series."""

from __future__ import annotations

import socket
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import unquote, urlsplit, urlunsplit

from wsmon.config.credentials import CREDENTIAL_KEYS, parse_authorization
from wsmon.config.secret_sources import expand_env
from wsmon.config.tls import parse_tls
from wsmon.config.validate import LABEL_NAME, check_keys, duration, typed
from wsmon.errors import ConfigError
from wsmon.redact import secrets
from wsmon.ws.tls import TLSOptions
from wsmon.ws.url import basic_credentials

__all__ = ["KINDS", "Kind", "PushTarget", "parse_push"]

# victoriametrics: POST <url>/api/v1/import/prometheus (text, gzip); pushgateway: PUT
# <url>/metrics/job/…; remote_write: POST <url> (protobuf WriteRequest, snappy) as is.
Kind = Literal["victoriametrics", "pushgateway", "remote_write"]
KINDS: tuple[Kind, ...] = ("victoriametrics", "pushgateway", "remote_write")

_KEYS = {
    "kind",
    "url",
    "name",
    "interval",
    "timeout",
    "job",
    "instance",
    "extra_labels",
    *CREDENTIAL_KEYS,
    "tls",
    "delete_on_shutdown",
}


@dataclass(frozen=True, slots=True)
class PushTarget:
    name: str  # the `push` label of wsmon's push health series: never a URL with secrets
    kind: Kind
    url: str = field(repr=False)  # base URL, wsmon appends the API path; remote_write: the write URL itself
    interval: float = 15.0
    timeout: float = 5.0
    job: str = "wsmon"
    instance: str = field(default_factory=socket.gethostname)  # Pushgateway grouping key
    extra_labels: tuple[tuple[str, str], ...] = ()
    authorization: str | None = field(default=None, repr=False)  # "Basic …" or "Bearer …"
    tls: TLSOptions = field(default_factory=TLSOptions)  # for https:// URLs; server_name as in modules
    delete_on_shutdown: bool = False  # Pushgateway: remove the group when wsmon stops cleanly


def parse_push(table: Mapping[str, Any], index: int, where: str, env: Mapping[str, str] | None = None) -> PushTarget:
    where = f"{where}: push #{index}"
    check_keys(table, _KEYS, where)
    kind = typed(table, "kind", str, where) if "kind" in table else "victoriametrics"
    if kind not in KINDS:
        raise ConfigError(f"{where}: kind must be victoriametrics, pushgateway or remote_write, not {kind!r}")
    if "url" not in table:
        raise ConfigError(
            f"{where}: url is missing: the base URL of vmagent, VictoriaMetrics or the Pushgateway "
            "(remote_write: the full write URL, e.g. http://prometheus:9090/api/v1/write)"
        )
    url = expand_env(typed(table, "url", str, where), where, env).rstrip("/")
    try:
        parts = urlsplit(url)
        # urllib checks the port only when it is read.
        hostname, username, password, _port = parts.hostname, parts.username, parts.password, parts.port
    except ValueError:
        raise ConfigError(f"{where}: url must be an http:// or https:// base URL with a valid host and port") from None
    if parts.scheme not in ("http", "https") or not hostname:
        raise ConfigError(f"{where}: url must be an http:// or https:// base URL")
    userinfo_auth = None
    if username is not None:
        # Credentials in the URL are basic_auth by another name: taken out of the URL (which
        # is shown and used without them) and registered as secrets like basic_auth's.
        if any(key in table for key in CREDENTIAL_KEYS):
            raise ConfigError(f"{where}: set credentials in the url or in basic_auth/bearer_token, not both")
        userinfo_auth = "Basic " + basic_credentials(unquote(username), unquote(password or ""))
        url = urlunsplit(parts._replace(netloc=parts.netloc.rpartition("@")[2]))
        parts = urlsplit(url)
    # Push URLs are few and configured, and httpx quotes the URL in some of its errors.
    secrets.add_url(url)
    values: dict[str, Any] = {"kind": kind, "url": url}
    values["name"] = typed(table, "name", str, where) if "name" in table else f"{kind}:{parts.netloc}"
    for key in ("interval", "timeout"):
        if key in table:
            values[key] = duration(table, key, where)
            if values[key] <= 0:
                raise ConfigError(f"{where}: {key} must be greater than 0")
    for key in ("job", "instance"):
        if key in table:
            values[key] = typed(table, key, str, where)
            if not values[key]:
                raise ConfigError(f"{where}: {key} must not be empty")
    if "extra_labels" in table:
        labels = typed(table, "extra_labels", Mapping, where)
        for key, value in labels.items():
            if not LABEL_NAME.fullmatch(key) or not isinstance(value, str):
                raise ConfigError(f"{where}: extra_labels: {key!r} must be a label name with a string value")
        values["extra_labels"] = tuple(sorted(labels.items()))
    values["authorization"] = userinfo_auth or parse_authorization(table, where, env)
    values["tls"] = parse_tls(table, where)
    if "delete_on_shutdown" in table:
        values["delete_on_shutdown"] = typed(table, "delete_on_shutdown", bool, where)
    if "timeout" not in values:  # 5 s, but always shorter than the interval
        values["timeout"] = min(5.0, values.get("interval", 15.0) / 2)
    push = PushTarget(**values)
    if push.timeout >= push.interval:
        raise ConfigError(f"{where}: timeout must be shorter than interval")
    return push
