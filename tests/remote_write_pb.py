"""Prometheus' remote write messages (prompb), built at run time with the protobuf package: the
reference decoder the tests read wsmon's hand-encoded ``WriteRequest`` bodies with."""

from __future__ import annotations

from typing import Any

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

__all__ = ["WriteRequest"]


def _messages() -> Any:
    proto = descriptor_pb2.FileDescriptorProto(name="wsmon_test_prompb.proto", package="prometheus", syntax="proto3")
    F = descriptor_pb2.FieldDescriptorProto
    label = proto.message_type.add(name="Label")
    label.field.add(name="name", number=1, type=F.TYPE_STRING, label=F.LABEL_OPTIONAL)
    label.field.add(name="value", number=2, type=F.TYPE_STRING, label=F.LABEL_OPTIONAL)
    sample = proto.message_type.add(name="Sample")
    sample.field.add(name="value", number=1, type=F.TYPE_DOUBLE, label=F.LABEL_OPTIONAL)
    sample.field.add(name="timestamp", number=2, type=F.TYPE_INT64, label=F.LABEL_OPTIONAL)
    series = proto.message_type.add(name="TimeSeries")
    series.field.add(
        name="labels", number=1, type=F.TYPE_MESSAGE, label=F.LABEL_REPEATED, type_name=".prometheus.Label"
    )
    series.field.add(
        name="samples", number=2, type=F.TYPE_MESSAGE, label=F.LABEL_REPEATED, type_name=".prometheus.Sample"
    )
    request = proto.message_type.add(name="WriteRequest")
    request.field.add(
        name="timeseries", number=1, type=F.TYPE_MESSAGE, label=F.LABEL_REPEATED, type_name=".prometheus.TimeSeries"
    )
    pool = descriptor_pool.DescriptorPool()
    pool.Add(proto)
    return message_factory.GetMessageClass(pool.FindMessageTypeByName("prometheus.WriteRequest"))


WriteRequest: Any = _messages()
