"""deploy/: alert rules, Grafana dashboard and Kubernetes manifests, each checked by a real tool.

- the rule file passes ``promtool check rules``, its unit tests (``promtool test rules``) and
  ``vmalert -dryRun``; the VMRule and the PrometheusRule embed exactly its groups;
- the dashboard's queries parse (promtool and vmalert, as recording rules);
- every metric name the rules and the dashboard use is served by a real ``wsmon serve``
  watching local servers (a JSON-RPC node, a subscription stream, a dead endpoint, a working
  and a dead push destination);
- the Kubernetes manifests parse, build with ``kubectl kustomize`` (alone and under an overlay
  that sets a namespace), run locked down, and the StatefulSet's shell really turns pod
  ``wsmon-<i>`` into ``--shard=<i>/<replicas>``; the ConfigMap's targets.toml passes
  ``wsmon config check`` with the Secret's variables.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import shutil
import subprocess
import sys
import tomllib
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from websockets.asyncio.server import ServerConnection, serve
from websockets.exceptions import ConnectionClosed

from tests import servers
from tests.realservers import wsmon_serve
from tests.servers import MS, go_duration
from wsmon.continuous.series import TARGET_FAMILIES
from wsmon.continuous.shard import parse_shard

try:
    import yaml
except ImportError:  # PyYAML belongs in the dev dependencies
    HAVE_YAML = False
else:
    HAVE_YAML = True

ROOT = Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "deploy"
ALERTS = DEPLOY / "alerts"
RULES = ALERTS / "wsmon-rules.yml"
RULE_TESTS = ALERTS / "wsmon-rules.test.yml"
DASHBOARD = DEPLOY / "grafana" / "wsmon.json"
K8S = DEPLOY / "kubernetes"
TARGETS_TOML = K8S / "common" / "targets.toml"

# Series the scraper makes, not wsmon: allowed in the rules, nowhere else.
SCRAPER_SERIES = {"up"}


def _needs_tool(name: str, package: str) -> pytest.MarkDecorator:
    return pytest.mark.skipif(
        shutil.which(name) is None and os.geteuid() != 0,
        reason=f"{name} is not installed (make test installs Debian's {package} package when run as root)",
    )


needs_promtool = _needs_tool("promtool", "prometheus")
needs_vmalert = _needs_tool("vmalert", "victoria-metrics")
needs_kubectl = pytest.mark.skipif(
    shutil.which("kubectl") is None, reason="kubectl is not installed: the kustomize builds are not checked"
)
needs_yaml = pytest.mark.skipif(not HAVE_YAML, reason="PyYAML is not installed (pip install -e '.[dev]')")


def run(
    *argv: str | Path, cwd: Path | None = None, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    strings = [str(a) for a in argv]
    return subprocess.run(strings, capture_output=True, text=True, cwd=cwd, env=env, timeout=120_000 * MS)


def load_yaml(path: Path) -> Any:
    assert HAVE_YAML, "PyYAML is not installed"
    return yaml.safe_load(path.read_text())


def load_documents(text: str) -> list[dict[str, Any]]:
    assert HAVE_YAML, "PyYAML is not installed"
    return [doc for doc in yaml.safe_load_all(text) if doc is not None]


# --- PromQL: which metric names an expression uses ------------------------------------------

_NOT_METRICS = {"by", "without", "on", "ignoring", "group_left", "group_right", "and", "or", "unless", "bool"}
_NOT_METRICS |= {"offset", "inf", "nan"}


def metric_names(expr: str) -> set[str]:
    """Metric names in a PromQL expression: identifiers that are neither functions, keywords,
    label names nor Grafana variables."""
    expr = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)  # string literals
    expr = re.sub(r"\{[^}]*\}", "", expr)  # label matchers
    expr = re.sub(r"\[[^\]]*\]", "", expr)  # range selectors
    expr = re.sub(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", "", expr)  # label lists
    expr = re.sub(r"\$\{?\w+\}?", "", expr)  # $target, $__rate_interval
    names = set()
    for match in re.finditer(r"(?<![\w.])[a-zA-Z_:][\w:]*", expr):
        if expr[match.end() :].lstrip().startswith("(") or match.group().lower() in _NOT_METRICS:
            continue  # a function or aggregation, or a keyword
        names.add(match.group())
    return names


def test_metric_names_finds_metrics_and_nothing_else() -> None:
    expr = (
        'histogram_quantile(0.99, sum by (target, le) (rate(a_bucket{x="y", le!="1"}[5m]))) > 0.5 '
        'and ignoring (state) (b{state="connected"} == 1) or vector(0) unless on (job) c_total offset 5m'
    )
    assert metric_names(expr) == {"a_bucket", "b", "c_total"}
    assert metric_names('time() - d_seconds{target=~"$target"} + 1e3') == {"d_seconds"}


def family(name: str) -> str:
    """The family a sample name belongs to: wsmon_probes_total → wsmon_probes."""
    for suffix in ("_total", "_bucket", "_sum", "_count"):
        if name.endswith(suffix) and name.removesuffix(suffix) in TARGET_FAMILIES:
            return name.removesuffix(suffix)
    return name


def rules() -> list[dict[str, Any]]:
    return [rule for group in load_yaml(RULES)["groups"] for rule in group["rules"]]


def exporter_jobs() -> str:
    """The job regex WsmonExporterDown watches."""
    (rule,) = (rule for rule in rules() if rule["alert"] == "WsmonExporterDown")
    match = re.fullmatch(r'up\{job=~"([^"]+)"\} == 0', rule["expr"])
    assert match, rule["expr"]
    return match.group(1)


def dashboard() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(DASHBOARD.read_text())
    return data


def dashboard_panels() -> Iterator[dict[str, Any]]:
    for panel in dashboard()["panels"]:
        yield panel
        yield from panel.get("panels", [])


def dashboard_exprs() -> list[str]:
    return [target["expr"] for panel in dashboard_panels() for target in panel.get("targets", [])]


def dashboard_metric_names() -> set[str]:
    names = set().union(*(metric_names(expr) for expr in dashboard_exprs()))
    for variable in dashboard()["templating"]["list"]:
        if variable["type"] == "query":
            names |= set(re.findall(r"label_values\((\w+)", variable["definition"]))
    return names


# --- alert rules --------------------------------------------------------------------------------


@needs_promtool
def test_rules_pass_promtool_check() -> None:
    result = run("promtool", "check", "rules", RULES)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


@needs_promtool
def test_rules_pass_their_unit_tests() -> None:
    result = run("promtool", "test", "rules", RULE_TESTS.name, cwd=ALERTS)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


@needs_yaml
def test_rule_unit_tests_cover_down_up_and_stalled() -> None:
    cases = [case for test in load_yaml(RULE_TESTS)["tests"] for case in test["alert_rule_test"]]
    down = [case["exp_alerts"] for case in cases if case["alertname"] == "WebSocketEndpointDown"]
    assert [] in down and any(down), "EndpointDown must be tested firing and not firing"
    assert any(case["exp_alerts"] for case in cases if case["alertname"] == "WebSocketSubscriptionStalled")
    tested = {case["alertname"] for case in cases}
    assert tested <= {rule["alert"] for rule in rules()}


@needs_vmalert
def test_rules_pass_vmalert_dry_run() -> None:
    result = run("vmalert", "-dryRun", f"-rule={RULES}")
    assert result.returncode == 0, result.stdout + result.stderr


@needs_yaml
def test_every_rule_has_severity_and_names_targets_never_urls() -> None:
    groups = {group["name"]: group["rules"] for group in load_yaml(RULES)["groups"]}
    for group, group_rules in groups.items():
        for rule in group_rules:
            assert rule["labels"]["severity"] in ("critical", "warning"), rule["alert"]
            annotations = rule["annotations"]
            assert set(annotations) == {"summary", "description"}, rule["alert"]
            text = " ".join(annotations.values())
            for forbidden in ("$labels.url", "__param_target", "__address__", "://"):
                assert forbidden not in text, (rule["alert"], forbidden)
            per_target = {family(name) in TARGET_FAMILIES for name in metric_names(rule["expr"])}
            if group == "wsmon-targets":  # per-target alerts: the configured name, never instance
                assert per_target == {True}, rule["alert"]
                assert "$labels.target" in annotations["summary"], rule["alert"]
                assert "$labels.instance" not in text, rule["alert"]
            else:  # the exporter's own health: no target label to name
                assert per_target == {False}, rule["alert"]
    names = {rule["alert"] for group_rules in groups.values() for rule in group_rules}
    assert {"WebSocketEndpointDown", "WebSocketHighPingPongLatency"} <= names  # the seed guides' alerts
    seed = {rule["alert"]: rule for rule in groups["wsmon-targets"]}
    assert seed["WebSocketEndpointDown"]["expr"] == "probe_success == 0"
    assert seed["WebSocketEndpointDown"]["for"] == "2m"
    assert seed["WebSocketHighPingPongLatency"]["expr"] == "probe_websocket_ping_pong_duration_seconds > 0.5"
    assert seed["WebSocketHighPingPongLatency"]["for"] == "5m"


@needs_yaml
@pytest.mark.parametrize(
    ("path", "api_version", "kind"),
    [
        (K8S / "victoriametrics" / "vmrule.yaml", "operator.victoriametrics.com/v1beta1", "VMRule"),
        (K8S / "prometheus-operator" / "prometheusrule.yaml", "monitoring.coreos.com/v1", "PrometheusRule"),
    ],
)
def test_embedded_rules_are_the_rule_file(path: Path, api_version: str, kind: str) -> None:
    (document,) = load_documents(path.read_text())
    assert (document["apiVersion"], document["kind"]) == (api_version, kind)
    assert document["spec"]["groups"] == load_yaml(RULES)["groups"], (
        f"{path.relative_to(ROOT)} differs from {RULES.relative_to(ROOT)}: run python3 deploy/alerts/embed_rules.py"
    )


# --- Grafana dashboard ----------------------------------------------------------------------------


def test_dashboard_structure() -> None:
    board = dashboard()
    assert board["schemaVersion"] >= 36
    assert board["uid"] == "wsmon"
    variables = {variable["name"]: variable for variable in board["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    assert variables["target"]["type"] == "query"
    assert (variables["target"]["multi"], variables["target"]["includeAll"]) == (True, True)
    panels = list(dashboard_panels())
    ids = [panel["id"] for panel in panels]
    assert len(ids) == len(set(ids))
    types = {panel["type"] for panel in panels}
    assert {"table", "heatmap", "timeseries", "stat"} <= types
    for panel in panels:
        assert {"h", "w", "x", "y"} <= set(panel["gridPos"]), panel["title"]
        for target in panel.get("targets", []):
            assert target["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, panel["title"]
            if any(family(name) in TARGET_FAMILIES for name in metric_names(target["expr"])):
                assert 'target=~"$target"' in target["expr"], (panel["title"], target["expr"])
    heatmaps = {panel["title"]: panel for panel in panels if panel["type"] == "heatmap"}
    heatmap_exprs = " ".join(t["expr"] for panel in heatmaps.values() for t in panel["targets"])
    assert "wsmon_ping_pong_duration_seconds_bucket" in heatmap_exprs
    assert "wsmon_connect_duration_seconds_bucket" in heatmap_exprs
    assert all(t["format"] == "heatmap" for panel in heatmaps.values() for t in panel["targets"])
    (table,) = (panel for panel in panels if panel["type"] == "table")
    table_names = set().union(*(metric_names(t["expr"]) for t in table["targets"]))
    assert {"probe_success", "wsmon_connection_state"} <= table_names
    used = dashboard_metric_names()
    for name in (
        "wsmon_ping_pong_window_seconds",
        "wsmon_reconnects_total",
        "wsmon_messages_received_total",
        "wsmon_last_message_timestamp_seconds",
        "wsmon_push_total",
        "wsmon_push_last_success_timestamp_seconds",
    ):
        assert name in used


# Labels whose values wsmon chooses (not the operator's): a matcher on one must match a value
# wsmon exports, or the panel or alert is silently empty.
_WSMON_VALUED_LABELS = {"quantile", "state", "result", "phase"}


def _exported_label_values(monkeypatch: pytest.MonkeyPatch) -> dict[str, set[str]]:
    """Every value of those labels in a render of every kind of target (tests/test_render.py)."""
    from prometheus_client.parser import text_string_to_metric_families

    from tests.test_render import KINDS, MONO, _store
    from wsmon.continuous import series

    monkeypatch.setattr(series, "perf_counter", lambda: MONO)  # the windows read at MONO
    text = asyncio.run(series.render_store(_store(list(KINDS)))).decode()
    values: dict[str, set[str]] = {label: set() for label in _WSMON_VALUED_LABELS}
    for metric in text_string_to_metric_families(text):
        for sample in metric.samples:
            for label in _WSMON_VALUED_LABELS & set(sample.labels):
                values[label].add(sample.labels[label])
    return values


def test_label_matchers_match_what_wsmon_exports(monkeypatch: pytest.MonkeyPatch) -> None:
    exported = _exported_label_values(monkeypatch)
    queries = dashboard_exprs() + [rule["expr"] for rule in rules()]
    checked = 0
    for expr in queries:
        for label, op, value in re.findall(r'(\w+)\s*(=~|=)\s*"([^"]*)"', expr):
            if label not in _WSMON_VALUED_LABELS:
                continue
            for alternative in value.split("|") if op == "=~" else [value]:
                pattern = alternative if op == "=~" else re.escape(alternative)
                assert any(re.fullmatch(pattern, v) for v in exported[label]), (expr, label, alternative)
                checked += 1
    assert checked >= 5  # the quantiles, the connection states, result="failure"


def _queries_as_recording_rules(tmp_path: Path) -> Path:
    """Every dashboard query, Grafana variables filled in, as a rule file the tools can check."""
    rules_text = ["groups:", "  - name: dashboard", "    rules:"]
    for index, expr in enumerate(dashboard_exprs()):
        concrete = expr.replace("$__rate_interval", "5m").replace("$target", ".*")
        assert "$" not in concrete, expr
        rules_text += [f"      - record: wsmon_dashboard:query_{index}", f"        expr: {json.dumps(concrete)}"]
    path = tmp_path / "dashboard-queries.yml"
    path.write_text("\n".join(rules_text) + "\n")
    return path


@needs_promtool
def test_dashboard_queries_parse_with_promtool(tmp_path: Path) -> None:
    result = run("promtool", "check", "rules", _queries_as_recording_rules(tmp_path))
    assert result.returncode == 0, result.stdout + result.stderr


@needs_vmalert
def test_dashboard_queries_parse_with_vmalert(tmp_path: Path) -> None:
    result = run("vmalert", "-dryRun", f"-rule={_queries_as_recording_rules(tmp_path)}")
    assert result.returncode == 0, result.stdout + result.stderr


# --- every metric name used is one wsmon serves -----------------------------------------------------


@contextlib.asynccontextmanager
async def new_heads_server() -> AsyncIterator[servers.Server]:
    """A node's eth_subscribe("newHeads"): the subscription id, then a new head every 100 ms."""
    every = 100 * MS

    async def handler(ws: ServerConnection) -> None:
        with contextlib.suppress(ConnectionClosed):
            await ws.recv()
            await ws.send(json.dumps({"jsonrpc": "2.0", "id": 1, "result": "0xcafe"}))
            for number in range(0x100, 0x100000):
                head = {"subscription": "0xcafe", "result": {"number": hex(number)}}
                await ws.send(json.dumps({"jsonrpc": "2.0", "method": "eth_subscription", "params": head}))
                await asyncio.sleep(every)

    async with serve(handler, servers.HOST, 0, ping_interval=None, compression=None) as server:
        yield servers.Server(port=next(iter(server.sockets)).getsockname()[1])


@contextlib.asynccontextmanager
async def push_sink() -> AsyncIterator[servers.Server]:
    """Answers every request 204, as VictoriaMetrics' /api/v1/import/prometheus does."""

    async def handler(peer: servers.Peer) -> None:
        head = await peer.reader.readuntil(b"\r\n\r\n")
        length = re.search(rb"(?im)^content-length:\s*(\d+)", head)
        await peer.reader.readexactly(int(length.group(1)) if length else 0)
        await peer.send(b"HTTP/1.1 204 No Content\r\nConnection: close\r\n\r\n")

    async with servers.raw_server(handler) as server:
        yield server


BLOCK_NUMBER = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "eth_blockNumber", "params": []})
NEW_HEADS = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "eth_subscribe", "params": ["newHeads"]})


def served_names(exposition: str) -> set[str]:
    names = set()
    for line in exposition.splitlines():
        if line and not line.startswith("#"):
            match = re.match(r"[a-zA-Z_:][\w:]*", line)
            assert match, line
            names.add(match.group())
    return names


async def test_every_metric_the_rules_and_dashboard_use_is_served(tmp_path: Path) -> None:
    used: dict[str, set[str]] = {}
    for rule in rules() if HAVE_YAML else []:
        for name in metric_names(rule["expr"]):
            used.setdefault(name, set()).add(f"alert {rule['alert']}")
    for name in dashboard_metric_names():
        used.setdefault(name, set()).add("dashboard")
    assert used, "no metric names found"
    for name, where in used.items():
        if name in SCRAPER_SERIES:
            assert where == {"alert WsmonExporterDown"}, (name, where)
        else:
            assert name.startswith(("probe_", "wsmon_")), (name, where)
    wanted = set(used) - SCRAPER_SERIES

    dead = f"ws://{servers.HOST}:{servers.refused_port()}/"
    async with servers.echo_server(jsonrpc=True) as rpc, new_heads_server() as heads, push_sink() as sink:
        config = tmp_path / "targets.toml"
        config.write_text(
            f"""
[settings]
interval = "{go_duration(1000 * MS)}"
timeout = "{go_duration(500 * MS)}"
ping_interval = "{go_duration(250 * MS)}"
window = "{go_duration(60_000 * MS)}"

[modules.eth]
ping = true
[[modules.eth.steps]]
send = '{BLOCK_NUMBER}'
expect = '"result"'
extract = "result"
name = "block"

[[targets]]
name = "rpc"
url = "{rpc.url("/")}"
module = "eth"
labels = {{ chain = "eth" }}

[[targets]]
name = "heads"
url = "{heads.url("/")}"
mode = "persistent"
subscribe = {{ send = '{NEW_HEADS}', extract = "params.result.number", name = "block" }}

[[targets]]
name = "dead"
url = "{dead}"

[[push]]
name = "sink"
url = "http://{servers.HOST}:{sink.port}"
interval = "{go_duration(1000 * MS)}"
timeout = "{go_duration(500 * MS)}"

[[push]]
name = "nowhere"
url = "http://{servers.HOST}:{servers.refused_port()}"
interval = "{go_duration(1000 * MS)}"
timeout = "{go_duration(500 * MS)}"
"""
        )
        served: set[str] = set()
        text = ""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 30_000 * MS
        async with (
            wsmon_serve(tmp_path, config) as wsmon,
            httpx.AsyncClient(base_url=wsmon.base) as client,
        ):
            while loop.time() < deadline and not wanted <= served:
                await asyncio.sleep(500 * MS)
                with contextlib.suppress(httpx.TransportError):
                    response = await client.get("/metrics")
                    if response.status_code == 200:
                        text = response.text
                        served = served_names(text)
    assert served, f"wsmon serve never answered /metrics: {wsmon.log()}"
    missing = {name: sorted(used[name]) for name in sorted(wanted - served)}
    assert not missing, f"used but not served by wsmon: {missing}"
    if shutil.which("promtool"):  # the whole /metrics of a real wsmon serve, its own series included
        checked = await asyncio.to_thread(
            subprocess.run, ["promtool", "check", "metrics"], input=text.encode(), capture_output=True, check=False
        )
        assert checked.returncode == 0, (checked.stdout + checked.stderr).decode()


# --- Kubernetes ----------------------------------------------------------------------------------------


def manifest_paths() -> list[Path]:
    return sorted(p for p in K8S.rglob("*.yaml") if p.name != "kustomization.yaml")


def kustomizations() -> list[Path]:
    return sorted(K8S.rglob("kustomization.yaml"))


def objects(kind: str) -> list[dict[str, Any]]:
    found = [doc for path in manifest_paths() for doc in load_documents(path.read_text()) if doc["kind"] == kind]
    assert found, kind
    return found


def the(kind: str) -> dict[str, Any]:
    (found,) = objects(kind)
    return found


def targets_toml() -> dict[str, Any]:
    return tomllib.loads(TARGETS_TOML.read_text())


@needs_yaml
def test_manifests_parse_and_are_namespace_agnostic() -> None:
    assert manifest_paths()
    for path in manifest_paths():
        documents = load_documents(path.read_text())
        assert documents, path
        for doc in documents:
            assert doc.get("apiVersion") and doc.get("kind"), path
            assert doc.get("metadata", {}).get("name"), path
            assert "namespace" not in doc["metadata"], f"{path}: the overlay sets the namespace"
    kinds = {doc["kind"] for path in manifest_paths() for doc in load_documents(path.read_text())}
    assert kinds == {
        "Deployment",
        "StatefulSet",
        "Service",
        "Secret",
        "VMServiceScrape",
        "VMProbe",
        "VMRule",
        "ServiceMonitor",
        "Probe",
        "PrometheusRule",
    }


@needs_yaml
def test_kustomizations_list_every_manifest() -> None:
    listed: set[Path] = set()
    for path in kustomizations():
        data = load_yaml(path)
        assert data["kind"] in ("Kustomization", "Component"), path
        for entry in data.get("resources", []) + data.get("components", []):
            target = (path.parent / entry).resolve()
            assert target.exists(), f"{path}: {entry}"
            if target.is_dir():
                assert (target / "kustomization.yaml").exists(), f"{path}: {entry}"
            listed.add(target)
        for generator in data.get("configMapGenerator", []):
            for file in generator["files"]:
                assert (path.parent / file).exists(), f"{path}: {file}"
        for entry in data.get("components", []):
            assert load_yaml(path.parent / entry / "kustomization.yaml")["kind"] == "Component"
    assert set(manifest_paths()) <= listed


def kustomize(directory: Path) -> list[dict[str, Any]]:
    result = run("kubectl", "kustomize", directory)
    assert result.returncode == 0, result.stderr
    return load_documents(result.stdout)


@needs_kubectl
@needs_yaml
def test_kustomize_builds_the_default_and_the_sharded_variant() -> None:
    for directory, workload in ((K8S, "Deployment"), (K8S / "sharded", "StatefulSet")):
        built = kustomize(directory)
        by_kind = {doc["kind"]: doc for doc in built}
        assert set(by_kind) == {"ConfigMap", "Secret", "Service", workload, "VMServiceScrape", "VMRule"}
        config_map = by_kind["ConfigMap"]
        assert config_map["metadata"]["name"].startswith("wsmon-config-")  # hashed: edits roll the pods
        assert config_map["data"]["targets.toml"] == TARGETS_TOML.read_text()
        volumes = {v["name"]: v for v in by_kind[workload]["spec"]["template"]["spec"]["volumes"]}
        assert volumes["config"]["configMap"]["name"] == config_map["metadata"]["name"]


@needs_kubectl
@needs_yaml
def test_kustomize_overlay_sets_the_namespace_everywhere(tmp_path: Path) -> None:
    base = os.path.relpath(K8S, tmp_path)
    (tmp_path / "kustomization.yaml").write_text(
        f"""apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
namespace: ws-monitoring
resources:
  - {base}
components:
  - {base}/victoriametrics-probe
  - {base}/prometheus-operator
  - {base}/prometheus-operator-probe
patches:
  - target: {{kind: VMProbe, name: wsmon}}
    patch: |
      - op: replace
        path: /spec/vmProberSpec/url
        value: wsmon.ws-monitoring.svc:9095
"""
    )
    built = kustomize(tmp_path)
    assert {doc["kind"] for doc in built} >= {"Deployment", "VMProbe", "Probe", "ServiceMonitor", "PrometheusRule"}
    assert all(doc["metadata"]["namespace"] == "ws-monitoring" for doc in built)
    (probe,) = (doc for doc in built if doc["kind"] == "VMProbe")
    assert probe["spec"]["vmProberSpec"]["url"] == "wsmon.ws-monitoring.svc:9095"


def workloads() -> list[dict[str, Any]]:
    return [the("Deployment"), the("StatefulSet")]


def container(workload: dict[str, Any]) -> dict[str, Any]:
    only: dict[str, Any]
    (only,) = workload["spec"]["template"]["spec"]["containers"]
    return only


@needs_yaml
@pytest.mark.parametrize("kind", ["Deployment", "StatefulSet"])
def test_workload_is_locked_down_and_probed(kind: str) -> None:
    workload = the(kind)
    pod = workload["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert pod["automountServiceAccountToken"] is False
    selector = workload["spec"]["selector"]["matchLabels"]
    assert selector.items() <= workload["spec"]["template"]["metadata"]["labels"].items()
    wsmon = container(workload)
    assert wsmon["image"] == "wsmon:latest"
    security = wsmon["securityContext"]
    assert security["runAsNonRoot"] is True
    assert security["readOnlyRootFilesystem"] is True
    assert security["allowPrivilegeEscalation"] is False
    assert security["capabilities"] == {"drop": ["ALL"]}
    assert security["seccompProfile"] == {"type": "RuntimeDefault"}
    for kind_of in ("requests", "limits"):
        assert {"cpu", "memory"} <= set(wsmon["resources"][kind_of])
    assert wsmon["ports"] == [{"name": "http", "containerPort": 9095, "protocol": "TCP"}]
    assert wsmon["livenessProbe"]["httpGet"] == {"path": "/-/healthy", "port": "http"}
    assert wsmon["readinessProbe"]["httpGet"] == {"path": "/-/ready", "port": "http"}
    command = " ".join(wsmon.get("command", []) + wsmon.get("args", []))
    assert "serve --config /etc/wsmon/targets.toml" in command
    mounts = {m["name"]: m for m in wsmon["volumeMounts"]}
    assert mounts["config"]["mountPath"] == "/etc/wsmon" and mounts["config"]["readOnly"] is True
    assert mounts["tmp"]["mountPath"] == "/tmp"  # the only writable place
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert volumes["config"]["configMap"]["name"] == "wsmon-config"
    assert "emptyDir" in volumes["tmp"]
    assert [e["secretRef"]["name"] for e in wsmon["envFrom"]] == [the("Secret")["metadata"]["name"]]
    service = the("Service")
    assert service["spec"]["selector"].items() <= workload["spec"]["template"]["metadata"]["labels"].items()


@needs_yaml
def test_deployment_args() -> None:
    args = container(the("Deployment"))["args"]
    assert args[:3] == ["serve", "--config", "/etc/wsmon/targets.toml"]
    assert not any(arg.startswith("--shard") for arg in args)


@needs_yaml
def test_statefulset_shard_is_the_pod_ordinal(tmp_path: Path) -> None:
    """The StatefulSet's real command, run by /bin/sh with a stand-in wsmon that prints its
    arguments: pod wsmon-<i> of N replicas must start with --shard=<i>/N."""
    statefulset = the("StatefulSet")
    replicas = statefulset["spec"]["replicas"]
    assert replicas > 1
    wsmon = container(statefulset)
    env = {e["name"]: e for e in wsmon["env"]}
    for value in env.values():
        if "valueFrom" in value:
            assert value["valueFrom"] == {"fieldRef": {"fieldPath": "metadata.name"}}
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    stand_in = bin_dir / "wsmon"
    stand_in.write_text('#!/bin/sh\nprintf "%s\\n" "$@"\n')
    stand_in.chmod(0o755)
    argv = wsmon["command"] + wsmon["args"]
    assert argv[0] == "/bin/sh"
    for ordinal in range(replicas):
        pod_env = {"PATH": f"{bin_dir}:/usr/bin:/bin"}
        for name, value in env.items():
            pod_env[name] = f"{statefulset['metadata']['name']}-{ordinal}" if "valueFrom" in value else value["value"]
        result = run(*argv, env=pod_env)
        assert result.returncode == 0, result.stderr
        printed = result.stdout.splitlines()
        assert printed[:3] == ["serve", "--config", "/etc/wsmon/targets.toml"]
        (shard,) = (arg.removeprefix("--shard=") for arg in printed if arg.startswith("--shard="))
        assert parse_shard(shard) == (ordinal, replicas)
    assert statefulset["spec"]["serviceName"] == the("Service")["metadata"]["name"]


@needs_yaml
def test_configmap_targets_are_valid_with_the_secrets_variables() -> None:
    secret = the("Secret")["stringData"]
    urls = [target["url"] for target in targets_toml()["targets"]]
    variables = {name for url in urls for name in re.findall(r"\$\{(\w+)\}", url)}
    assert variables and variables <= set(secret), "every ${VAR} of targets.toml comes from the Secret"
    check = [sys.executable, "-m", "wsmon", "config", "check", str(TARGETS_TOML)]
    clean_env = {k: v for k, v in os.environ.items() if k not in variables}
    valid = run(*check, env={**clean_env, **secret})
    assert valid.returncode == 0, valid.stdout + valid.stderr
    unset = run(*check, env=clean_env)
    assert unset.returncode == 2  # without the Secret wsmon refuses the file
    for target in targets_toml()["targets"]:
        assert "://" in target["url"] and "${" in target["url"], target["name"]  # no literal token


@needs_yaml
@pytest.mark.parametrize(
    ("kind", "prober", "targets_key"),
    [("VMProbe", "vmProberSpec", "targets"), ("Probe", "prober", "static")],
)
def test_probes_list_configured_names_never_urls(kind: str, prober: str, targets_key: str) -> None:
    spec = the(kind)["spec"]
    static = spec["targets"]["staticConfig"]
    names = [target["name"] for target in targets_toml()["targets"]]
    assert static[targets_key] == names
    assert not any("://" in name or "/" in name for name in static[targets_key])
    assert {"sourceLabels": ["__param_target"], "targetLabel": "target"} in static["relabelingConfigs"]
    assert spec[prober]["path"] == "/probe"
    service = the("Service")
    host, port = spec[prober]["url"].rsplit(":", 1)
    assert host.split(".")[0] == service["metadata"]["name"]
    assert int(port) == service["spec"]["ports"][0]["port"]
    assert re.fullmatch(exporter_jobs(), spec["jobName"])
    assert "module" not in spec  # each name is probed with its own module from targets.toml


@needs_yaml
@pytest.mark.parametrize("kind", ["VMServiceScrape", "ServiceMonitor"])
def test_service_scrapes_select_the_service(kind: str) -> None:
    spec = the(kind)["spec"]
    service = the("Service")
    assert spec["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
    (endpoint,) = spec["endpoints"]
    assert endpoint["port"] in {port["name"] for port in service["spec"]["ports"]}
    assert endpoint["path"] == "/metrics"
    # WsmonExporterDown watches job="wsmon": the operators name the job after the Service.
    assert re.fullmatch(exporter_jobs(), service["metadata"]["name"])
