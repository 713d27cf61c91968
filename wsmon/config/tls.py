"""``tls`` tables of the config file, for probe modules and push destinations alike.

```toml
tls = { ca_file = "/etc/wsmon/ca.pem", cert_file = "client.pem", key_file = "client.key",
        server_name = "node.internal", insecure_skip_verify = false }
```

Every key is optional; a client certificate needs ``cert_file`` and ``key_file`` together.
Each file is opened here to check it can be read (``wsmon.ws.tls`` reads it when it builds the
TLS context): a missing one stops the config from loading instead of failing every probe or
push. Messages name the key, never its value: a PEM key pasted where a path belongs must not
end up in an error.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from wsmon.config.validate import check_keys, typed
from wsmon.errors import ConfigError
from wsmon.ws.tls import TLSOptions

__all__ = ["check_readable", "parse_tls"]

_FILE_KEYS = ("ca_file", "cert_file", "key_file")
_KEYS = {*_FILE_KEYS, "server_name", "insecure_skip_verify"}


def parse_tls(table: Mapping[str, Any], where: str) -> TLSOptions:
    """The ``TLSOptions`` of ``table``'s ``tls`` table (the defaults when it has none).

    ConfigError names the first thing wrong, checked in this order: ``tls`` is a table, its
    keys are known, their types, ``cert_file`` with ``key_file``, then each file is readable.
    """
    if "tls" not in table:
        return TLSOptions()
    tls = typed(table, "tls", Mapping, where)
    where = f"{where}: tls"
    check_keys(tls, _KEYS, where)

    def value(key: str, kind: type) -> Any:
        return typed(tls, key, kind, where) if key in tls else None

    options = TLSOptions(
        ca_file=value("ca_file", str),
        cert_file=value("cert_file", str),
        key_file=value("key_file", str),
        server_name=value("server_name", str),
        insecure_skip_verify=value("insecure_skip_verify", bool) or False,
    )
    if (options.cert_file is None) != (options.key_file is None):
        raise ConfigError(f"{where} needs both cert_file and key_file for a client certificate")
    for key in _FILE_KEYS:
        check_readable(tls, key, where)
    return options


def check_readable(table: Mapping[str, Any], key: str, where: str) -> None:
    """Raise ConfigError unless ``table[key]`` (if set) names a file wsmon can open.

    The message names the key and why (``No such file or directory``), not the path.
    """
    if key not in table:
        return
    try:
        with open(table[key], "rb"):  # not Path(): Path("") is the current directory
            pass
    except OSError as exc:
        raise ConfigError(f"{where}: cannot read {key}: {exc.strerror or type(exc).__name__}") from None
    except ValueError:  # a NUL character in the path
        raise ConfigError(f"{where}: cannot read {key}: not a file path") from None
