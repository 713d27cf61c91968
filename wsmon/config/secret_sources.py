"""Secrets come from the environment (``${VAR}``) or from files, never only from the TOML.

Files are read by ``read_bounded``: regular files only, opened without blocking and read up to
a limit, so that a path to ``/dev/zero``, a FIFO nobody writes or a directory is a one-line
error instead of a hang or an exhausted memory.
"""

from __future__ import annotations

import os
import re
import stat
from collections.abc import Mapping

from wsmon.errors import ConfigError
from wsmon.redact import secrets, url_secrets, userinfo_secrets

__all__ = ["MAX_SECRET_FILE", "expand_env", "read_bounded", "read_secret_file"]

_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
MAX_SECRET_FILE = 64 * 1024  # a token, a password or a URL; anything larger is the wrong file


def expand_env(text: str, where: str, env: Mapping[str, str] | None = None) -> str:
    """Replace every ``${VAR}`` with its value; a missing variable is a config error.

    Expanded values are registered as secrets: a ``${VAR}`` is how tokens reach a URL.
    """
    environ = os.environ if env is None else env

    def substitute(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in environ:
            raise ConfigError(f"{where}: environment variable {name} is not set; export it or use a *_file key")
        value = environ[name]
        secrets.add([value])
        return value

    return _VAR.sub(substitute, text)


def read_bounded(path: str, limit: int) -> bytes:
    """The bytes of the regular file at ``path``, at most ``limit`` of them.

    Raises OSError when the system refuses, ValueError (a message that reads after the path)
    for anything but a regular file and for a file of more than ``limit`` bytes.
    """
    # O_NONBLOCK: opening a FIFO for reading would wait for a writer; the flag does not
    # change how a regular file reads.
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC)
    try:
        mode = os.fstat(fd).st_mode
        if stat.S_ISDIR(mode):
            raise ValueError("is a directory; give the path of a file")
        if not stat.S_ISREG(mode):
            raise ValueError("is not a regular file (a device, FIFO or socket); point it at a file")
        chunks: list[bytes] = []
        size = 0
        while size <= limit:
            chunk = os.read(fd, limit + 1 - size)
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
        if size > limit:
            raise ValueError(f"is larger than {_size(limit)}; point it at the right file")
        return b"".join(chunks)
    finally:
        os.close(fd)


def _size(limit: int) -> str:
    return f"{limit >> 20} MiB" if limit >= 1 << 20 else f"{limit >> 10} KiB"


def read_secret_file(path: str, where: str) -> str:
    """A secret file's content without its trailing newline (as editors and `echo` leave it)."""
    try:
        value = read_bounded(path, MAX_SECRET_FILE).decode("utf-8").rstrip("\r\n")
    except OSError as exc:
        raise ConfigError(f"{where}: cannot read secret file {path}: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{where}: secret file {path} is not UTF-8 text") from None
    except ValueError as exc:
        raise ConfigError(f"{where}: secret file {path} {exc}") from None
    if not value:
        raise ConfigError(f"{where}: secret file {path} is empty")
    secrets.add([value])
    return value


def register_url_secrets(url: str, basic_auth: str | None, *, from_file: bool) -> None:
    """Register a configured ws(s) URL's secrets for scrubbing, wherever the URL came from.

    A URL read from a file as a whole (``from_file``; ``read_secret_file`` registered it already)
    gets its token-like parts too, as they may show up alone; its userinfo is a secret as
    ``basic_auth`` (``basic_auth``: the parsed URL's, base64 "user:password"). A URL written in
    the file is shown redacted by structure; its path is not registered (it may be a word).
    """
    if from_file:
        secrets.add(url_secrets(url, whole_path=False))
    if basic_auth is not None:
        secrets.add([basic_auth, *userinfo_secrets(url)])
