"""CPU of one push body at fleet size: remote write (hand-written protobuf vs the protobuf
package's messages, both snappy-compressed) beside the import API's text + gzip.

A Store of N persistent targets (default 10,000), each with a full window of round trips, a
few failures and a subscription value, is written through each sink in turn; CPU is
``time.process_time`` around encode + compress, median of ``--reps`` (default 5) with min–max,
taking turns. Prints µs per series as well, and the body sizes::

    .venv/bin/python bench/remote_write_encode.py --targets 10000 --reps 5
"""

from __future__ import annotations

import argparse
import gzip
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import cramjam

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # tests.remote_write_pb

from tests.remote_write_pb import WriteRequest
from wsmon.config.file import Mode, Subscription, Target
from wsmon.continuous.series import TARGET_FAMILIES, write_target
from wsmon.continuous.store import Store
from wsmon.metrics.histogram import LatencyHistogram
from wsmon.metrics.remote_write import RemoteWriteSink
from wsmon.metrics.sinks import TextSink
from wsmon.probe.jsonpath import JsonPath
from wsmon.probe.module import BUILTIN_MODULES
from wsmon.probe.reasons import Reason

Labels = tuple[tuple[str, str], ...]


def fleet(n: int) -> Store:
    store = Store()
    subscribe = Subscription(send="{}", extract=JsonPath.parse("result"), name="block")
    for i in range(n):
        target = Target(
            name=f"node-{i:05d}",
            url=f"ws://127.0.0.1:{10000 + i}/",
            module=BUILTIN_MODULES["ping"],
            mode=Mode.PERSISTENT,
            labels=(("chain", "eth"), ("region", f"eu-{i % 7}")),
            subscribe=subscribe if i % 10 == 0 else None,
        )
        state = store.add(target, 300.0, 1.0)
        state.record_connected(0.002)
        for k in range(300):
            state.record_pong(0.0002 + (k % 17) * 1e-5, float(k))
        state.record_failure(Reason.PING_TIMEOUT, "no pong within 10s")
        if target.subscribe is not None:
            state.record_message()
            state.record_value("block", 21_000_000 + i)
    return store


class LibrarySink:
    """The same series through the protobuf package's WriteRequest messages."""

    def __init__(self, timestamp_ms: int, extra: Labels) -> None:
        self._request = WriteRequest()
        self._counters = {name for name, (kind, _) in TARGET_FAMILIES.items() if kind == "counter"}
        self._timestamp_ms, self._extra = timestamp_ms, extra
        self._target: Labels = extra

    def target(self, labels: Labels) -> None:
        self._target = (*labels, *self._extra)

    def _put(self, name: str, value: float, extra: Labels = ()) -> None:
        series = self._request.timeseries.add()
        for label_name, label_value in sorted((("__name__", name), *self._target, *extra)):
            label = series.labels.add()
            label.name, label.value = label_name, label_value
        sample = series.samples.add()
        sample.value, sample.timestamp = value, self._timestamp_ms

    def sample(self, family: str, value: float, extra: Labels = ()) -> None:
        self._put(f"{family}_total" if family in self._counters else family, float(value), extra)

    def histogram(self, family: str, histogram: LatencyHistogram) -> None:
        count = 0
        for le, count in histogram.cumulative():
            self._put(f"{family}_bucket", float(count), (("le", le),))
        self._put(f"{family}_sum", histogram.sum)
        self._put(f"{family}_count", float(count))

    def body(self) -> bytes:
        return bytes(cramjam.snappy.compress_raw(self._request.SerializeToString()))


def encode(store: Store, make: Callable[[], Any], finish: Callable[[Any], bytes]) -> tuple[float, bytes]:
    began = time.process_time()
    sink = make()
    now = time.perf_counter()
    for state in store:
        write_target(sink, state, now)
    body = finish(sink)
    return time.process_time() - began, body


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--targets", type=int, default=10_000)
    parser.add_argument("--reps", type=int, default=5)
    args = parser.parse_args()
    store = fleet(args.targets)
    stamp, job = int(time.time() * 1000), (("job", "wsmon"),)
    ways: dict[str, tuple[Callable[[], Any], Callable[[Any], bytes]]] = {
        "remote write, hand-written": (lambda: RemoteWriteSink(TARGET_FAMILIES, stamp, job), lambda s: s.body()),
        "remote write, protobuf package": (lambda: LibrarySink(stamp, job), lambda s: s.body()),
        "import API, text + gzip -1": (
            lambda: TextSink(TARGET_FAMILIES),
            lambda s: gzip.compress(s.render(), compresslevel=1),
        ),
    }
    times: dict[str, list[float]] = {name: [] for name in ways}
    sizes: dict[str, int] = {}
    for rep in range(args.reps + 1):  # the first round warms up and is not kept
        for name, (make, finish) in ways.items():
            seconds, body = encode(store, make, finish)
            if rep:
                times[name].append(seconds)
            sizes[name] = len(body)
    series = RemoteWriteSink(TARGET_FAMILIES, stamp, job)
    for state in store:
        write_target(series, state, 0.0)
    print(f"{args.targets} targets, {series.series} series; CPU per push body, median of {args.reps} (min–max):")
    for name, values in times.items():
        med = statistics.median(values)
        print(
            f"  {name:<32} {med:6.3f} s ({min(values):.3f}–{max(values):.3f})  "
            f"{med / series.series * 1e6:5.2f} µs/series  body {sizes[name] / 1e6:6.2f} MB"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
