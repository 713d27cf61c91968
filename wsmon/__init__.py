"""wsmon: a WebSocket endpoint monitor for Prometheus and VictoriaMetrics."""

# The single source of the version (pyproject.toml reads it): no importlib.metadata at start-up.
__version__ = "0.1.0"

__all__ = ["__version__"]
