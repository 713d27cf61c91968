"""Errors a user acts on: each message is one line saying what is wrong and what to do."""

from __future__ import annotations

__all__ = ["ConfigError", "TargetError"]


class ConfigError(ValueError):
    """The configuration (file, flag or query parameter) is not valid."""


class TargetError(ValueError):
    """A probe target URL is not one wsmon can probe."""
