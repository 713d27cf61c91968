#!/usr/bin/env python3
"""Copy the groups of wsmon-rules.yml into the VMRule and the PrometheusRule.

    python3 deploy/alerts/embed_rules.py

The rule file stays the one place to edit; tests/test_deploy_artifacts.py fails when an
embedded copy differs from it. Text is copied as it is (comments included), indented under
``spec:``: no YAML library needed.
"""

from __future__ import annotations

from pathlib import Path

DEPLOY = Path(__file__).resolve().parent.parent
RULES = DEPLOY / "alerts" / "wsmon-rules.yml"
HEADER = """\
# Generated from deploy/alerts/wsmon-rules.yml by deploy/alerts/embed_rules.py: edit that
# file and run the script, not this one.
{extra}apiVersion: {api_version}
kind: {kind}
metadata:
  name: wsmon
  labels:
    app.kubernetes.io/name: wsmon
    app.kubernetes.io/component: alerts
spec:
  groups:
"""
OUTPUTS = {
    DEPLOY / "kubernetes" / "victoriametrics" / "vmrule.yaml": {
        "api_version": "operator.victoriametrics.com/v1beta1",
        "kind": "VMRule",
        "extra": "# VMAlert picks it up through its ruleSelector / ruleNamespaceSelector.\n",
    },
    DEPLOY / "kubernetes" / "prometheus-operator" / "prometheusrule.yaml": {
        "api_version": "monitoring.coreos.com/v1",
        "kind": "PrometheusRule",
        "extra": (
            "# The Prometheus object must select it: with kube-prometheus-stack add the label its\n"
            "# ruleSelector wants (e.g. release: <helm release name>) in a kustomize patch.\n"
        ),
    },
}


def groups_text() -> str:
    lines = RULES.read_text().splitlines()
    start = lines.index("groups:") + 1
    return "".join(f"  {line}\n" if line.strip() else "\n" for line in lines[start:])


def main() -> None:
    body = groups_text()
    for path, fields in OUTPUTS.items():
        path.write_text(HEADER.format(**fields) + body)
        print(f"wrote {path.relative_to(DEPLOY.parent)}")


if __name__ == "__main__":
    main()
