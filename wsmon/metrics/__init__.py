"""Metric series: sinks (Prometheus objects or text), latency histograms, exposition formats,
the series of a probe result and the exporter's own health."""
