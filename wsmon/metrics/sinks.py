"""Where metric samples go: Prometheus ``Metric`` objects, or text exposition lines.

The code that knows *which* series wsmon exports (``probe_metrics``, ``collector``) writes
through a sink, so each series is defined once and can be encoded two ways:

- ``MetricSink``: prometheus_client ``Metric`` families, for ``/probe`` (one result, and the
  scraper may ask for OpenMetrics);
- ``TextSink``: text format 0.0.4 written directly, for ``/metrics`` and push with thousands of
  targets: each target's labels are rendered once, not once per sample, which makes it ~10×
  faster than building ``Metric`` objects and letting prometheus_client format them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Protocol

from prometheus_client.core import Metric
from prometheus_client.utils import floatToGoString

from wsmon.metrics.histogram import LatencyHistogram

__all__ = ["Families", "MetricSink", "Sink", "TextSink", "label_text"]

Labels = tuple[tuple[str, str], ...]
Families = Mapping[str, tuple[str, str]]  # family name → (type, HELP), in output order


# client_python's own number formatting (+Inf, NaN, Go-style exponents), so the text written
# here reads like prometheus_client's; it is untyped, hence the annotated alias.
_number: Callable[[float], str] = floatToGoString


def _escape(value: str) -> str:
    return value.replace("\\", r"\\").replace("\n", r"\n").replace('"', r"\"")


def label_text(labels: Labels) -> str:
    """``a="1",b="2"``: labels as the text format writes them (no braces)."""
    return ",".join(f'{name}="{_escape(value)}"' for name, value in labels)


class Sink(Protocol):
    def target(self, labels: Labels) -> None:
        """The labels every following sample carries (the target's), until the next call."""

    def sample(self, family: str, value: float, extra: Labels = ()) -> None:
        """A gauge sample, or a counter's ``_total``."""

    def histogram(self, family: str, histogram: LatencyHistogram) -> None: ...


class MetricSink:
    def __init__(self, families: Families) -> None:
        self._metrics = {name: Metric(name, doc, kind) for name, (kind, doc) in families.items()}
        self._labels: dict[str, str] = {}

    def target(self, labels: Labels) -> None:
        self._labels = dict(labels)

    def sample(self, family: str, value: float, extra: Labels = ()) -> None:
        metric = self._metrics[family]
        name = f"{family}_total" if metric.type == "counter" else family
        metric.add_sample(name, {**self._labels, **dict(extra)}, value)

    def histogram(self, family: str, histogram: LatencyHistogram) -> None:
        metric = self._metrics[family]
        count = 0
        for le, count in histogram.cumulative():
            metric.add_sample(f"{family}_bucket", {**self._labels, "le": le}, count)
        metric.add_sample(f"{family}_sum", self._labels, histogram.sum)
        metric.add_sample(f"{family}_count", self._labels, count)

    def collect(self) -> Iterable[Metric]:
        return [m for m in self._metrics.values() if m.samples]


class TextSink:
    def __init__(self, families: Families) -> None:
        self._families = families
        self._lines: dict[str, list[str]] = {name: [] for name in families}
        self._counters = {name for name, (kind, _) in families.items() if kind == "counter"}
        self._base = ""  # the current target's label text
        self._braced = ""  # the same, in braces (or nothing)
        self._extras: dict[Labels, str] = {}  # rendered extra labels: a handful, used over and over

    def target(self, labels: Labels) -> None:
        self._base = label_text(labels)
        self._braced = f"{{{self._base}}}" if self._base else ""

    def sample(self, family: str, value: float, extra: Labels = ()) -> None:
        name = f"{family}_total" if family in self._counters else family
        if extra:
            more = self._extras.get(extra)
            if more is None:
                more = self._extras[extra] = label_text(extra)
            labels = f"{{{self._base},{more}}}" if self._base else f"{{{more}}}"
        else:
            labels = self._braced
        self._lines[family].append(f"{name}{labels} {_number(value)}")

    def histogram(self, family: str, histogram: LatencyHistogram) -> None:
        lines = self._lines[family]
        prefix = f"{family}_bucket{{{self._base}," if self._base else f"{family}_bucket{{"
        count = 0
        for le, count in histogram.cumulative():
            lines.append(f'{prefix}le="{le}"}} {count}')
        lines.append(f"{family}_sum{self._braced} {_number(histogram.sum)}")
        lines.append(f"{family}_count{self._braced} {count}")

    def render(self) -> bytes:
        out: list[str] = []
        for name, (kind, doc) in self._families.items():
            lines = self._lines[name]
            if lines:
                # Text format 0.0.4 names a counter by its samples' name, `_total` included.
                shown = f"{name}_total" if kind == "counter" else name
                out.append(f"# HELP {shown} {doc}\n# TYPE {shown} {kind}")
                out.extend(lines)
        return ("\n".join(out) + "\n").encode() if out else b""
