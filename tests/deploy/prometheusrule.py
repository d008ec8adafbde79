"""Build deploy/k8s/base/prometheusrule.yaml from deploy/prometheus/alerts.yml.

The Prometheus operator loads alert rules from PrometheusRule objects, not from rule files, so the
manifest carries a copy of the rule groups. ``test_k8s.py`` fails when the copy is stale; rewrite
it with::

    .venv/bin/python -m tests.deploy.prometheusrule
"""

from __future__ import annotations

from typing import Any

import yaml

from tests.deploy.support import DEPLOY

__all__ = ["MANIFEST", "SOURCE", "build", "main"]

SOURCE = DEPLOY / "prometheus" / "alerts.yml"
MANIFEST = DEPLOY / "k8s" / "base" / "prometheusrule.yaml"

HEADER = """\
# GENERATED from deploy/prometheus/alerts.yml by `python -m tests.deploy.prometheusrule`;
# edit the rule file, not this copy (tests/deploy/test_k8s.py fails when they differ).
# The Prometheus operator's Prometheus must select it (ruleSelector); kube-prometheus-stack's
# default selector wants the label `release: <your release name>`.
"""


def build() -> dict[str, Any]:
    """The PrometheusRule object holding the rule groups of ``alerts.yml``."""
    rules = yaml.safe_load(SOURCE.read_text())
    return {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "PrometheusRule",
        "metadata": {
            "name": "usm-dispatch",
            "labels": {"app.kubernetes.io/name": "usm-dispatch"},
        },
        "spec": {"groups": rules["groups"]},
    }


class _Dumper(yaml.SafeDumper):
    """Multi-line strings (PromQL) as literal blocks, as in the rule file."""


def _str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _str)


def main() -> None:
    text = yaml.dump(
        build(), Dumper=_Dumper, sort_keys=False, width=1000, allow_unicode=True, indent=2
    )
    MANIFEST.write_text(HEADER + text)


if __name__ == "__main__":
    main()
