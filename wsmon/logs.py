"""Logging, configured in one place: structlog for wsmon, the stdlib for libraries (uvicorn).

Every line, exception texts and tracebacks included, passes ``clean``: the URLs and HTTP
request targets in it redacted by structure (uvicorn and httpx log them whole), then the
configured secret values scrubbed.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Mapping, MutableMapping
from types import TracebackType
from typing import Any, Literal

import structlog

from wsmon.redact import redact_text, secrets

__all__ = ["clean", "configure_logging"]

LogFormat = Literal["console", "json"]


def clean(text: str) -> str:
    """``text`` fit for a log line or an error message: URLs redacted, secrets scrubbed."""
    return secrets.scrub(redact_text(text))


def _scrub_event(_: Any, __: str, event: MutableMapping[str, Any]) -> Mapping[str, Any]:
    return {k: clean(v) if isinstance(v, str) else v for k, v in event.items()}


class _ScrubbingFormatter(structlog.stdlib.ProcessorFormatter):
    """Library log lines (uvicorn, httpx, asyncio) in wsmon's own format, scrubbed."""

    def format(self, record: logging.LogRecord) -> str:
        return clean(super().format(record))


def _excepthook(kind: type[BaseException], exc: BaseException, tb: TracebackType | None) -> None:
    import traceback

    sys.stderr.write(clean("".join(traceback.format_exception(kind, exc, tb))))


def configure_logging(level: int = logging.INFO, fmt: LogFormat = "console") -> None:
    renderer: Any = (
        structlog.processors.JSONRenderer()
        if fmt == "json"
        else structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty())
    )
    shared: list[Any] = [
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            *shared,
            structlog.processors.format_exc_info,
            _scrub_event,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(level),
        logger_factory=structlog.PrintLoggerFactory(sys.stderr),
        cache_logger_on_first_use=True,
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        _ScrubbingFormatter(
            foreign_pre_chain=[*shared, structlog.stdlib.add_logger_name],
            processors=[
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                structlog.processors.format_exc_info,
                _scrub_event,
                renderer,
            ],
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # uvicorn reports every WebSocket connection at INFO: one line per probe of the echo endpoint.
    # httpx reports every request (each push) at INFO: news only when debugging.
    for chatty in ("uvicorn.error", "httpx", "httpcore"):
        logging.getLogger(chatty).setLevel(level if level <= logging.DEBUG else logging.WARNING)
    sys.excepthook = _excepthook
