"""A ProbeResult as Prometheus metric families: the ``probe_*`` names of the product contract.

Used by ``/probe`` (one result, no labels) and by continuous mode (one result per target,
each with its ``target`` and own labels). Families are built fresh from results on every
call, so concurrent probes can never see each other's values.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from prometheus_client.core import Metric

from wsmon.result import ProbeResult

__all__ = ["ProbeFamilies"]

# name → (HELP, TYPE); the first six keep the HELP texts of the original exporter guides.
_FAMILIES: dict[str, str] = {
    "probe_success": "Displays whether or not the probe was a success",
    "probe_duration_seconds": "Returns how long the probe took to complete in seconds",
    "probe_websocket_up": "Displays whether the WebSocket connection was successful",
    "probe_websocket_connection_duration_seconds": "Duration of the WebSocket connection establishment",
    "probe_websocket_ping_pong_success": "Displays whether the WebSocket ping-pong was successful",
    "probe_websocket_ping_pong_duration_seconds": "Duration between ping and pong messages",
    "probe_websocket_duration_seconds": "Duration of each probe phase in seconds",
    "probe_websocket_status_code": "HTTP status code of the answer to the WebSocket upgrade request",
    "probe_websocket_failure_info": "Why the probe failed (1 for the reason)",
    "probe_timeout_seconds": "The deadline the probe ran with, in seconds",
    "probe_ip_protocol": "IP protocol of the connection (4 or 6)",
    "probe_ssl_earliest_cert_expiry": "Unix time at which the server's certificate expires",
    "probe_tls_version_info": "TLS version of the connection",
    "probe_websocket_ping_pong_count": "Pings sent in this probe",
    "probe_websocket_ping_pong_min_seconds": "Fastest ping-pong round trip of this probe",
    "probe_websocket_ping_pong_avg_seconds": "Mean ping-pong round trip of this probe",
    "probe_websocket_ping_pong_max_seconds": "Slowest ping-pong round trip of this probe",
    "probe_websocket_ping_pong_jitter_seconds": "Mean deviation of the ping-pong round trips of this probe",
    "probe_websocket_ping_pong_loss_ratio": "Share of pings without a pong (0 to 1)",
    "probe_websocket_message_success": "Whether each message step got the expected answer",
    "probe_websocket_message_duration_seconds": "Time from a step's send to its answer",
    "probe_websocket_failed_due_to_regex": "Whether a message step failed because the answer did not match",
    "probe_websocket_message_value": "A number extracted from a message step's answer",
}


class ProbeFamilies:
    """Collects results into the ``probe_*`` families, then yields the non-empty ones."""

    def __init__(self) -> None:
        self._metrics = {name: Metric(name, doc, "gauge") for name, doc in _FAMILIES.items()}

    def _set(self, name: str, labels: Mapping[str, str], value: float) -> None:
        self._metrics[name].add_sample(name, dict(labels), value)

    def add(self, result: ProbeResult, labels: Mapping[str, str], *, ping_enabled: bool) -> None:
        set_ = self._set
        set_("probe_success", labels, float(result.success))
        set_("probe_duration_seconds", labels, result.duration)
        set_("probe_websocket_up", labels, float(result.up))
        if result.up:
            set_("probe_websocket_connection_duration_seconds", labels, result.connect_duration)
        if ping_enabled:
            set_("probe_websocket_ping_pong_success", labels, float(result.ping_success))
            rtt = result.ping_rtt
            if rtt is not None:
                set_("probe_websocket_ping_pong_duration_seconds", labels, rtt)
        for phase, seconds in result.phases.items():
            set_("probe_websocket_duration_seconds", {**labels, "phase": str(phase)}, seconds)
        if result.status_code is not None:
            set_("probe_websocket_status_code", labels, result.status_code)
        if result.reason is not None:
            set_("probe_websocket_failure_info", {**labels, "reason": str(result.reason)}, 1.0)
        set_("probe_timeout_seconds", labels, result.timeout)
        if result.ip_protocol is not None:
            set_("probe_ip_protocol", labels, result.ip_protocol)
        if result.cert_expiry is not None:
            set_("probe_ssl_earliest_cert_expiry", labels, result.cert_expiry)
        if result.tls_version is not None:
            set_("probe_tls_version_info", {**labels, "version": result.tls_version}, 1.0)
        ping = result.ping
        if ping is not None and ping.sent > 1:
            set_("probe_websocket_ping_pong_count", labels, ping.sent)
            set_("probe_websocket_ping_pong_loss_ratio", labels, ping.loss_ratio)
            if ping.rtts:
                set_("probe_websocket_ping_pong_min_seconds", labels, ping.min)
                set_("probe_websocket_ping_pong_avg_seconds", labels, ping.avg)
                set_("probe_websocket_ping_pong_max_seconds", labels, ping.max)
                set_("probe_websocket_ping_pong_jitter_seconds", labels, ping.jitter)
        if result.steps:
            regex_failed = any(step.failed_due_to_regex for step in result.steps)
            set_("probe_websocket_failed_due_to_regex", labels, float(regex_failed))
        for step in result.steps:
            step_labels = {**labels, "step": str(step.index + 1)}
            set_("probe_websocket_message_success", step_labels, float(step.success))
            set_("probe_websocket_message_duration_seconds", step_labels, step.duration)
            if step.value is not None and step.value_name is not None:
                set_("probe_websocket_message_value", {**labels, "name": step.value_name}, step.value)

    def add_connection(
        self,
        labels: Mapping[str, str],
        *,
        up: bool,
        connect_duration: float | None,
        ping_enabled: bool,
        ping_ok: bool,
        rtt: float | None,
        reason: str | None,
    ) -> None:
        """The seed gauges for a persistent connection: the state of its latest ping."""
        set_ = self._set
        set_("probe_success", labels, float(up and (ping_ok or not ping_enabled)))
        set_("probe_websocket_up", labels, float(up))
        if up and connect_duration is not None:
            set_("probe_websocket_connection_duration_seconds", labels, connect_duration)
        if ping_enabled:
            set_("probe_websocket_ping_pong_success", labels, float(up and ping_ok))
            if rtt is not None:
                set_("probe_websocket_ping_pong_duration_seconds", labels, rtt)
        if reason is not None and not (up and ping_ok):
            set_("probe_websocket_failure_info", {**labels, "reason": reason}, 1.0)

    def collect(self) -> Iterable[Metric]:
        return [m for m in self._metrics.values() if m.samples]
