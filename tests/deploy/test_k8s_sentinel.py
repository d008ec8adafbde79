"""deploy/k8s/overlays/sentinel: Redis with a primary, a replica and three sentinels, validated
offline like the example overlay (kubernetes-validate, the CRD schemas, kubectl kustomize)."""

from __future__ import annotations

import subprocess
from typing import Any

import pytest
import yaml

from service.connection import parse_sentinel_url
from tests.deploy.support import load_yaml, priority_names
from tests.deploy.test_k8s import K8S, KUBERNETES_VERSIONS, kubectl, usm_deployments, validate

OVERLAY = K8S / "overlays" / "sentinel"


def rendered() -> list[dict[str, Any]]:
    result = subprocess.run(
        [kubectl(), "kustomize", "--load-restrictor", "LoadRestrictionsNone", str(OVERLAY)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return [d for d in yaml.safe_load_all(result.stdout) if d]


@pytest.fixture(scope="module")
def docs() -> list[dict[str, Any]]:
    return rendered()


def of_kind(docs: list[dict[str, Any]], kind: str) -> dict[str, dict[str, Any]]:
    return {d["metadata"]["name"]: d for d in docs if d["kind"] == kind}


def secret_literals() -> dict[str, str]:
    (doc,) = load_yaml(OVERLAY / "kustomization.yaml")
    (redis,) = [g for g in doc["secretGenerator"] if g["name"] == "usm-redis"]
    return dict(item.split("=", 1) for item in redis["literals"])


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
def test_every_rendered_object_is_valid_for_its_kind(
    docs: list[dict[str, Any]], version: str
) -> None:
    for doc in docs:
        assert doc["metadata"].get("namespace", "usm") == "usm"
        validate(doc, version)
    assert len(usm_deployments([("rendered", d) for d in docs])) >= 2


def test_two_data_nodes_and_three_sentinels_behind_headless_services(
    docs: list[dict[str, Any]],
) -> None:
    sets = of_kind(docs, "StatefulSet")
    services = of_kind(docs, "Service")
    assert sets["redis"]["spec"]["replicas"] == 2
    assert sets["redis-sentinel"]["spec"]["replicas"] == 3
    for name in ("redis", "redis-sentinel"):
        spec = services[sets[name]["spec"]["serviceName"]]["spec"]
        assert spec["clusterIP"] == "None" and spec["publishNotReadyAddresses"] is True
        labels = sets[name]["spec"]["template"]["metadata"]["labels"]
        assert spec["selector"].items() <= labels.items()


def test_the_service_and_keda_reach_the_primary_through_the_sentinels(
    docs: list[dict[str, Any]],
) -> None:
    literals = secret_literals()
    target = parse_sentinel_url(literals["url"])
    assert target.service == literals["sentinelMaster"] == "usm"
    assert [f"{h}:{p}" for h, p in target.sentinels] == literals["addresses"].split(",")
    assert [h for h, _ in target.sentinels] == [
        f"redis-sentinel-{n}.redis-sentinel" for n in (0, 1, 2)
    ]
    (auth,) = of_kind(docs, "TriggerAuthentication").values()
    params = {ref["parameter"]: ref["key"] for ref in auth["spec"]["secretTargetRef"]}
    assert set(params.values()) <= set(literals)
    assert {"addresses", "sentinelMaster"} <= set(params)
    for scaled in of_kind(docs, "ScaledObject").values():
        triggers = scaled["spec"]["triggers"]
        assert len(triggers) == len(priority_names())
        assert {t["type"] for t in triggers} == {"redis-sentinel"}, scaled["metadata"]["name"]


def test_nodes_follow_the_sentinels_primary_and_refuse_writes_without_a_replica() -> None:
    node = (OVERLAY / "redis-node.sh").read_text()
    sentinel = (OVERLAY / "sentinel.sh").read_text()
    for script in (node, sentinel):
        assert "SENTINEL get-master-addr-by-name usm" in script
    assert "--min-replicas-to-write 1" in node and '--replicaof "$primary"' in node
    assert "sentinel monitor usm $primary 6379 2" in sentinel
    assert sentinel.index("resolve-hostnames yes") < sentinel.index("sentinel monitor")
    for script in ("redis-node.sh", "sentinel.sh"):
        check = subprocess.run(
            ["sh", "-n", str(OVERLAY / script)], check=False, capture_output=True
        )
        assert check.returncode == 0, check.stderr


def test_the_network_policy_admits_usm_keda_and_redis_pods_on_both_ports(
    docs: list[dict[str, Any]],
) -> None:
    (policy,) = of_kind(docs, "NetworkPolicy").values()
    (rule,) = policy["spec"]["ingress"]
    assert sorted(p["port"] for p in rule["ports"]) == [6379, 26379]
    for s in of_kind(docs, "StatefulSet").values():
        labels = s["spec"]["template"]["metadata"]["labels"].items()
        assert policy["spec"]["podSelector"]["matchLabels"].items() <= labels
    selectors = [p["podSelector"]["matchLabels"] for p in rule["from"] if "podSelector" in p]
    for deployment in usm_deployments([("rendered", d) for d in docs]):
        labels = deployment["spec"]["template"]["metadata"]["labels"].items()
        assert any(s.items() <= labels for s in selectors)
