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
from collections.abc import Mapping

import cramjam

from wsmon.metrics.histogram import LatencyHistogram

__all__ = ["CONTENT_TYPE", "HEADERS", "RemoteWriteSink", "encode_series"]

CONTENT_TYPE = "application/x-protobuf"
HEADERS = {
    "Content-Type": CONTENT_TYPE,
    "Content-Encoding": "snappy",
    "X-Prometheus-Remote-Write-Version": "0.1.0",
}

Labels = tuple[tuple[str, str], ...]
Families = Mapping[str, tuple[str, str]]  # family name → (type, HELP), as the text sinks take them

_DOUBLE = struct.Struct("<d")
_NAME = "__name__"


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


def _sample(value: float, timestamp_ms: int) -> bytes:
    """``TimeSeries.samples`` entry: field 2 holding a Sample{value = 1 (double), timestamp = 2}."""
    body = b"\x09" + _DOUBLE.pack(value)
    if timestamp_ms:
        body += b"\x10" + _varint(timestamp_ms)
    return _field(0x12, body)


def encode_series(labels: Labels, value: float, timestamp_ms: int) -> bytes:
    """One ``WriteRequest.timeseries`` entry: ``labels`` (``__name__`` among them) sorted by
    name, as remote write 1.0 requires, and one sample."""
    body = b"".join(_label(name, text) for name, text in sorted(labels)) + _sample(value, timestamp_ms)
    return _field(0x0A, body)


class RemoteWriteSink:
    """Series written straight into a ``WriteRequest``; ``body()`` is what is POSTed.

    ``extra`` labels (e.g. ``job``) go on every series; every sample carries ``timestamp_ms``
    (the render time: remote write has no "now" of the receiver's).
    """

    def __init__(self, families: Families, timestamp_ms: int, extra: Labels = ()) -> None:
        self._counters = {name for name, (kind, _) in families.items() if kind == "counter"}
        self._timestamp_ms = timestamp_ms
        self._labels: dict[tuple[str, str], bytes] = {}  # encoded once per distinct label
        self._extra = extra
        self._target: Labels = extra
        self._parts: list[bytes] = []
        self.series = 0

    def target(self, labels: Labels) -> None:
        """The labels every following series carries (the target's), until the next call."""
        self._target = (*labels, *self._extra)

    def _encoded(self, label: tuple[str, str]) -> bytes:
        encoded = self._labels.get(label)
        if encoded is None:
            encoded = self._labels[label] = _label(*label)
        return encoded

    def _put(self, name: str, value: float, extra: Labels = ()) -> None:
        labels = sorted(((_NAME, name), *self._target, *extra))
        body = b"".join([self._encoded(label) for label in labels]) + _sample(value, self._timestamp_ms)
        self._parts.append(b"\x0a" + _varint(len(body)) + body)
        self.series += 1

    def sample(self, family: str, value: float, extra: Labels = ()) -> None:
        """A gauge sample, or a counter's ``_total``."""
        self._put(f"{family}_total" if family in self._counters else family, float(value), extra)

    def histogram(self, family: str, histogram: LatencyHistogram) -> None:
        count = 0
        bucket = f"{family}_bucket"
        for le, count in histogram.cumulative():
            self._put(bucket, float(count), (("le", le),))
        self._put(f"{family}_sum", histogram.sum)
        self._put(f"{family}_count", float(count))

    def body(self) -> bytes:
        """The snappy-compressed (block format, as the protocol says) ``WriteRequest``."""
        return bytes(cramjam.snappy.compress_raw(b"".join(self._parts)))
