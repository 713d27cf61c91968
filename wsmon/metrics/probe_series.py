"""A ProbeResult as the ``probe_*`` series of the product contract, written to a Sink.

Used by ``/probe`` (one result, no labels, a fresh sink per request: concurrent probes never
see each other's values) and by continuous mode (one result per target, with its labels).
"""

from __future__ import annotations

from collections.abc import Mapping

from wsmon.metrics.sinks import Families, Sink
from wsmon.probe.result import ProbeResult

__all__ = ["PROBE_FAMILIES", "blackbox_phases", "write_connection", "write_result"]

# The first six keep the HELP texts of the original exporter guides.
_HELP: dict[str, str] = {
    "probe_success": "Displays whether or not the probe was a success",
    "probe_duration_seconds": "Returns how long the probe took to complete in seconds",
    "probe_websocket_up": "Displays whether the WebSocket connection was successful",
    "probe_websocket_connection_duration_seconds": "Duration of the WebSocket connection establishment",
    "probe_websocket_ping_pong_success": "Displays whether the WebSocket ping-pong was successful",
    "probe_websocket_ping_pong_duration_seconds": "Duration between ping and pong messages",
    # blackbox_exporter's websocket prober's names, for the targets that ask for them (``blackbox``).
    "probe_websocket_connection_upgraded": "Indicates if the websocket connection was successfully upgraded",
    "probe_dns_lookup_time_seconds": "Returns the time taken for probe dns lookup in seconds",
    "probe_websocket_duration_seconds": "Duration of each probe phase in seconds",
    "probe_websocket_status_code": "HTTP status code of the answer to the WebSocket upgrade request",
    "probe_websocket_failure_info": "Why the probe failed (1 for the reason)",
    "probe_timeout_seconds": "The deadline the probe ran with, in seconds",
    "probe_ip_protocol": "IP protocol of the connection (4 or 6)",
    "probe_ssl_earliest_cert_expiry": "Unix time at which the server's certificate expires",
    "probe_tls_version_info": "TLS version of the connection",
    "probe_websocket_ping_pong_sent": "Pings sent in this probe",
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


PROBE_FAMILIES: Families = {name: ("gauge", doc) for name, doc in _HELP.items()}

# wsmon's phases as blackbox_exporter's websocket prober names them: the TLS and HTTP upgrade
# handshakes are its "processing", the message exchange its "transfer". Ping and close, which
# it does not have, keep their names: the phases still add up to the probe.
_BLACKBOX_PHASES = {"tls": "processing", "upgrade": "processing", "message": "transfer"}


def blackbox_phases(phases: Mapping[str, float]) -> dict[str, float]:
    """``phases`` (seconds by wsmon's phase) under blackbox_exporter's phase names."""
    named: dict[str, float] = {}
    for phase, seconds in phases.items():
        name = _BLACKBOX_PHASES.get(phase, phase)
        named[name] = named.get(name, 0.0) + seconds
    return named


def write_result(
    sink: Sink,
    result: ProbeResult,
    *,
    ping_enabled: bool,
    phases: bool = True,
    details: bool = True,
    blackbox: bool = False,
) -> None:
    """The series of one probe result, under the sink's current target labels.

    ``phases``, ``details`` and ``blackbox``: the switches of a target's series budget
    (``wsmon.config.series``).
    """
    put = sink.sample
    put("probe_success", float(result.success))
    put("probe_duration_seconds", result.duration)
    put("probe_websocket_up", float(result.up))
    if result.up:
        put("probe_websocket_connection_duration_seconds", result.connect_duration)
    if ping_enabled:
        put("probe_websocket_ping_pong_success", float(result.ping_success))
        rtt = result.ping_rtt
        if rtt is not None:
            put("probe_websocket_ping_pong_duration_seconds", rtt)
    if blackbox:
        put("probe_websocket_connection_upgraded", float(result.up))
        if "resolve" in result.phases:
            put("probe_dns_lookup_time_seconds", result.phases["resolve"])
    if phases:
        named = blackbox_phases(result.phases) if blackbox else result.phases
        for phase, seconds in named.items():
            put("probe_websocket_duration_seconds", seconds, (("phase", str(phase)),))
    if details and result.status_code is not None:
        put("probe_websocket_status_code", result.status_code)
    if result.reason is not None:
        put("probe_websocket_failure_info", 1.0, (("reason", str(result.reason)),))
    if details:
        _write_details(sink, result)


def _write_details(sink: Sink, result: ProbeResult) -> None:
    """What a probe found beyond the seed's gauges: deadline, IP, TLS, multi-ping, message steps."""
    put = sink.sample
    put("probe_timeout_seconds", result.timeout)
    if result.ip_protocol is not None:
        put("probe_ip_protocol", result.ip_protocol)
    if result.cert_expiry is not None:
        put("probe_ssl_earliest_cert_expiry", result.cert_expiry)
    if result.tls_version is not None:
        put("probe_tls_version_info", 1.0, (("version", result.tls_version),))
    ping = result.ping
    if ping is not None and ping.sent > 1:
        put("probe_websocket_ping_pong_sent", ping.sent)
        put("probe_websocket_ping_pong_loss_ratio", ping.loss_ratio)
        if ping.rtts:
            put("probe_websocket_ping_pong_min_seconds", ping.min)
            put("probe_websocket_ping_pong_avg_seconds", ping.avg)
            put("probe_websocket_ping_pong_max_seconds", ping.max)
            put("probe_websocket_ping_pong_jitter_seconds", ping.jitter)
    if result.steps:
        put("probe_websocket_failed_due_to_regex", float(any(step.failed_due_to_regex for step in result.steps)))
    for step in result.steps:
        number = (("step", str(step.index + 1)),)
        put("probe_websocket_message_success", float(step.success), number)
        put("probe_websocket_message_duration_seconds", step.duration, number)
        if step.value is not None and step.value_name is not None:
            put("probe_websocket_message_value", step.value, (("name", step.value_name),))


def write_connection(
    sink: Sink,
    *,
    up: bool,
    connect_duration: float | None,
    ping_enabled: bool,
    ping_ok: bool,
    rtt: float | None,
    reason: str | None,
    blackbox: bool = False,
) -> None:
    """The seed series for a persistent connection: the state of its latest ping."""
    put = sink.sample
    success = up and (ping_ok or not ping_enabled)
    put("probe_success", float(success))
    put("probe_websocket_up", float(up))
    if up and connect_duration is not None:
        put("probe_websocket_connection_duration_seconds", connect_duration)
    if ping_enabled:
        put("probe_websocket_ping_pong_success", float(up and ping_ok))
        if up and rtt is not None:  # a round trip of a connection that is gone is no news
            put("probe_websocket_ping_pong_duration_seconds", rtt)
    if blackbox:
        put("probe_websocket_connection_upgraded", float(up))
    if reason is not None and not success:
        put("probe_websocket_failure_info", 1.0, (("reason", reason),))
