"""Changes made from the dashboard, kept across restarts in a state file of wsmon's own.

The operator's ``targets.toml`` is never rewritten: targets added at runtime, paused targets
and removed ones live in a JSON file (next to the config unless ``--state.file`` says where),
written atomically (a temporary file, fsync, rename) with owner-only permissions, since the
URLs of added targets may carry tokens. A change counts once it is on disk: ``save_changes``
raises OSError (a read-only or full filesystem) and the caller keeps what it had;
``check_writable`` lets ``wsmon serve`` refuse to start where no change could ever be saved.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import structlog

from wsmon.config.secret_sources import read_bounded

__all__ = ["RuntimeChanges", "check_writable", "load_changes", "save_changes"]

log = structlog.get_logger("wsmon")

# 10,000 added targets take about 3 MB; a larger file is not one wsmon wrote.
MAX_STATE_FILE = 64 << 20


@dataclass
class RuntimeChanges:
    added: list[dict[str, Any]] = field(default_factory=list)  # target tables, as the config file has them
    paused: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)  # config-file targets removed from the dashboard


def load_changes(path: Path | None) -> RuntimeChanges:
    """The changes saved in the state file; an unreadable file is moved aside, never fatal.

    Whatever is wrong with the file (not JSON, not UTF-8, nested too deeply for the parser,
    too large for memory, unreadable), wsmon starts from the config alone and says so in one
    line. Added targets that name a ``url_file`` are dropped: the targets API never writes one,
    and a state file must not make wsmon read a file the config did not name.
    """
    if path is None or not path.exists():
        return RuntimeChanges()
    try:
        data = json.loads(read_bounded(str(path), MAX_STATE_FILE).decode("utf-8"))
        changes = RuntimeChanges(
            added=[dict(t) for t in data.get("added", [])],
            paused=[str(n) for n in data.get("paused", [])],
            removed=[str(n) for n in data.get("removed", [])],
        )
    except (OSError, ValueError, TypeError, AttributeError, RecursionError, MemoryError) as exc:
        # Keep the unreadable file for a human; start from the config alone.
        backup = path.with_name(path.name + ".unreadable")
        try:
            os.replace(path, backup)
        except OSError as move:
            log.error(
                "state file unreadable, and it cannot be moved aside; starting from the config alone",
                path=str(path),
                error=type(exc).__name__,
                move_error=move.strerror,
            )
        else:
            log.error(
                "state file unreadable; moved aside", path=str(path), moved_to=str(backup), error=type(exc).__name__
            )
        return RuntimeChanges()
    kept = [t for t in changes.added if "url_file" not in t]
    if len(kept) != len(changes.added):
        log.error(
            "state file: added targets with url_file are ignored; add them to the config file instead",
            path=str(path),
            ignored=len(changes.added) - len(kept),
        )
        changes.added = kept
    return changes


def check_writable(path: Path) -> None:
    """OSError unless a file can be written, synced and removed in ``path``'s directory (made
    if missing): the same steps as ``save_changes``, with one byte."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".check")
    try:
        os.write(fd, b"\n")
        os.fsync(fd)
    finally:
        os.close(fd)
        Path(tmp).unlink(missing_ok=True)


def save_changes(path: Path | None, changes: RuntimeChanges) -> None:
    """Write ``changes`` to ``path`` atomically; OSError when it could not be done (the file
    then is as it was)."""
    if path is None:
        return
    payload = json.dumps(
        {"added": changes.added, "paused": sorted(set(changes.paused)), "removed": sorted(set(changes.removed))},
        indent=2,
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:  # mkstemp makes it 0600
            handle.write(payload)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
