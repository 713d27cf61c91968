"""What a probe says while it runs: for ``--debug`` logs and ``/probe?debug=true``.

A probe gets a ProbeLog only when someone listens; the hot path pays nothing otherwise.
Every line is scrubbed of known secrets before it is kept or logged.
"""

from __future__ import annotations

from typing import Any

import structlog

from wsmon.redact import secrets

__all__ = ["ProbeLog"]


class ProbeLog:
    def __init__(self, target: str, *, keep: bool, emit: bool) -> None:
        self.target = target  # already redacted
        self.lines: list[str] = []
        self._keep = keep
        self._logger = structlog.get_logger("wsmon.probe").bind(target=target) if emit else None

    def __call__(self, event: str, **fields: Any) -> None:
        event = secrets.scrub(event)
        clean = {k: secrets.scrub(v) if isinstance(v, str) else v for k, v in fields.items()}
        if self._keep:
            details = " ".join(f"{k}={v}" for k, v in clean.items())
            self.lines.append(f"{event} {details}".rstrip())
        if self._logger is not None:
            self._logger.debug(event, **clean)
