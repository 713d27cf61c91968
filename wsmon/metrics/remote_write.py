"""Prometheus remote write 1.0: the series as a protobuf ``WriteRequest``, snappy-compressed.

The protocol every Prometheus-compatible receiver accepts (Prometheus with
``--web.enable-remote-write-receiver``, vmagent's ``/api/v1/write``, VictoriaMetrics, Mimir,
Thanos Receive, Cortex). The messages wsmon sends, from Prometheus' ``prompb`` (remote.proto,
types.proto)::

    message WriteRequest { repeated TimeSeries timeseries = 1; }
    message TimeSeries   { repeated Label labels = 1; repeated Sample samples = 2; }
    message Label        { string name = 1; string value = 2; }
    message Sample       { double value = 1; int64 timestamp = 2; }  // milliseconds

Encoded here by hand rather than through the ``protobuf`` package: a series is a few
length-prefixed byte strings, and the label fields repeat (a target's name on each of its ~50
series, ``le="0.005"`` on every histogram), so each distinct label is encoded once per push
and the rest is concatenation. Measured at 10,000 targets (bench/remote_write_encode.py): see
bench/README.md for the figures against the ``protobuf`` package's messages.

``RemoteWriteSink`` takes the same calls as the text sinks (``wsmon.metrics.sinks``): the
series are defined once and encoded three ways.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence

import cramjam

from wsmon.metrics.histogram import LatencyHistogram
from wsmon.metrics.sinks import Families, Labels

__all__ = ["CONTENT_TYPE", "HEADERS", "RemoteWriteSink"]

CONTENT_TYPE = "application/x-protobuf"
HEADERS = {
    "Content-Type": CONTENT_TYPE,
    "Content-Encoding": "snappy",
    "X-Prometheus-Remote-Write-Version": "0.1.0",
}


_DOUBLE = struct.Struct("<d")
_NAME = "__name__"
_NAME_ONLY = (_NAME,)
_BUCKET_NAMES = (_NAME, "le")
Template = tuple[tuple[bytes, ...], tuple[int, ...]]  # see RemoteWriteSink._template


def _varint(value: int) -> bytes:
    """A base-128 varint (protobuf's encoding of lengths, tags' payloads and int64 ≥ 0)."""
    if value < 0x80:
        return bytes((value,))
    out = bytearray()
    while value >= 0x80:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _field(tag: int, payload: bytes) -> bytes:
    """A length-delimited field (wire type 2) with a one-byte tag."""
    return bytes((tag,)) + _varint(len(payload)) + payload


def _label(name: str, value: str) -> bytes:
    """``TimeSeries.labels`` entry: field 1 holding a Label{name = 1, value = 2}."""
    return _field(0x0A, _field(0x0A, name.encode()) + _field(0x12, value.encode()))


class RemoteWriteSink:
    """Series written straight into a ``WriteRequest``; ``body()`` is what is POSTed.

    ``extra`` labels (e.g. ``job``) go on every series; every sample carries ``timestamp_ms``
    (the render time: remote write has no "now" of the receiver's).

    A series' labels must go out sorted by name, and they are a target's fixed labels merged
    with ``__name__`` and the series' own (``le``, ``quantile``, ``reason``…). For each target and
    each set of series label *names* the merged order is the same, so it is worked out once
    (a template: runs of the target's encoded labels, with slots for the rest) and a series is
    then a join of ready-made bytes.
    """

    def __init__(self, families: Families, timestamp_ms: int, extra: Labels = ()) -> None:
        self._counters = {name for name, (kind, _) in families.items() if kind == "counter"}
        tail = b"\x10" + _varint(timestamp_ms) if timestamp_ms else b""
        self._sample_head = bytes((0x12, 9 + len(tail), 0x09))  # a Sample is < 128 bytes
        self._sample_tail = tail
        self._extra = extra
        self._labels: dict[tuple[str, str], bytes] = {}  # each distinct label encoded once
        self._fixed: Labels = extra
        self._templates: dict[tuple[str, ...], Template] = {}
        self._parts: list[bytes] = []
        self.series = 0
        self.size = 0  # bytes of the WriteRequest before compression

    def target(self, labels: Labels) -> None:
        """The labels every following series carries (the target's), until the next call."""
        self._fixed = tuple(sorted((*labels, *self._extra)))
        self._templates = {}

    def _encoded(self, label: tuple[str, str]) -> bytes:
        encoded = self._labels.get(label)
        if encoded is None:
            encoded = self._labels[label] = _label(*label)
        return encoded

    def _template(self, names: tuple[str, ...]) -> Template:
        """The merged label order for series whose own label names are ``names`` (``__name__``
        first): the target's encoded labels between the series' own, as (runs, slots) with
        ``len(runs) == len(slots) + 1`` — a series is ``runs[0] + own[slots[0]] + runs[1] …``."""
        merged = sorted([(name, index) for index, name in enumerate(names)] + [(n, -1) for n, _ in self._fixed])
        fixed = iter(self._fixed)
        runs, slots, run = [], [], b""
        for _, index in merged:
            if index < 0:
                run += self._encoded(next(fixed))
            else:
                runs.append(run)
                slots.append(index)
                run = b""
        runs.append(run)
        template = self._templates[names] = (tuple(runs), tuple(slots))
        return template

    def _series(self, body: bytes, value: float) -> None:
        body += self._sample_head + _DOUBLE.pack(value) + self._sample_tail
        size = len(body)
        if size < 0x80:
            head = bytes((0x0A, size))
        elif size < 0x4000:
            head = bytes((0x0A, (size & 0x7F) | 0x80, size >> 7))
        else:
            head = b"\x0a" + _varint(size)
        self._parts.append(head + body)
        self.series += 1
        self.size += len(head) + size

    def _put(self, name: str, value: float, extra: Labels = ()) -> None:
        own = ((_NAME, name), *extra)
        names = (_NAME, *[label[0] for label in extra]) if extra else _NAME_ONLY
        runs, slots = self._templates.get(names) or self._template(names)
        encoded = self._encoded
        if len(slots) == 1:
            body = runs[0] + encoded(own[0]) + runs[1]
        else:
            parts = [runs[0]]
            for slot, run in zip(slots, runs[1:], strict=True):
                parts += (encoded(own[slot]), run)
            body = b"".join(parts)
        self._series(body, value)

    def sample(self, family: str, value: float, extra: Labels = ()) -> None:
        """A gauge sample, or a counter's ``_total``."""
        self._put(f"{family}_total" if family in self._counters else family, float(value), extra)

    def histogram(self, family: str, histogram: LatencyHistogram) -> None:
        # The buckets differ only in ``le`` and the count: their template is filled once.
        bucket = (_NAME, f"{family}_bucket")
        # "__name__" < "le" whatever else: the slots are always (0, 1), the runs three.
        runs, _ = self._templates.get(_BUCKET_NAMES) or self._template(_BUCKET_NAMES)
        encoded = self._encoded
        before = runs[0] + encoded(bucket) + runs[1]
        count = 0
        for le, count in histogram.cumulative():
            self._series(before + encoded(("le", le)) + runs[2], float(count))
        self._put(f"{family}_sum", histogram.sum)
        self._put(f"{family}_count", float(count))

    def summary(self, family: str, quantiles: Sequence[tuple[str, float]], total: float, count: int) -> None:
        for q, value in quantiles:
            self._put(family, value, (("quantile", q),))
        self._put(f"{family}_sum", total)
        self._put(f"{family}_count", float(count))

    def body(self) -> bytes:
        """The snappy-compressed (block format, as the protocol says) ``WriteRequest``."""
        return bytes(cramjam.snappy.compress_raw(b"".join(self._parts)))
