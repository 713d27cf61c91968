"""wsmon: a WebSocket endpoint monitor for Prometheus and VictoriaMetrics."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("wsmon")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0"

__all__ = ["__version__"]
