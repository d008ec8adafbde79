"""deploy/compose.yaml: valid per the Compose Specification schema, and its references hold.

The schema is the compose-spec JSON Schema that check-jsonschema vendors (builtin
``vendor.compose-spec``), so validation runs offline.
"""

from __future__ import annotations

import copy
import json
import shlex
from importlib import resources
from pathlib import PurePosixPath
from typing import Any

import jsonschema
import pytest

from service.connection import parse_sentinel_url
from service.embedded_redis import HASH_MAX_LISTPACK_VALUE
from tests.deploy.support import DEPLOY, load_yaml, push_teams

COMPOSE = DEPLOY / "compose.yaml"


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    (doc,) = load_yaml(COMPOSE)
    return doc


@pytest.fixture(scope="module")
def validator() -> jsonschema.protocols.Validator:
    text = (
        resources.files("check_jsonschema.builtin_schemas.vendor")
        .joinpath("compose-spec.json")
        .read_text()
    )
    schema = json.loads(text)
    cls = jsonschema.validators.validator_for(schema)
    cls.check_schema(schema)
    return cls(schema, format_checker=cls.FORMAT_CHECKER)


def usm_services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Services built from this repo's Dockerfile."""
    return {
        name: svc
        for name, svc in compose["services"].items()
        if svc.get("build", {}).get("dockerfile") == "Dockerfile"
    }


def worker_teams(compose: dict[str, Any]) -> dict[str, list[str]]:
    """Service name -> teams of every `usm worker` service."""
    out: dict[str, list[str]] = {}
    for name, svc in usm_services(compose).items():
        command = svc["command"]
        if command[0] == "worker":
            out[name] = [command[i + 1] for i, word in enumerate(command) if word == "--team"]
    return out


def test_compose_file_is_valid_against_the_compose_specification(
    compose: dict[str, Any], validator: jsonschema.protocols.Validator
) -> None:
    errors = [f"{list(e.absolute_path)}: {e.message}" for e in validator.iter_errors(compose)]
    assert errors == []


def test_the_schema_check_rejects_a_broken_compose_file(
    compose: dict[str, Any], validator: jsonschema.protocols.Validator
) -> None:
    broken = copy.deepcopy(compose)
    broken["services"]["api"]["depends_on"]["redis"]["condition"] = "service_up"
    broken["services"]["redis"]["restart_policy"] = "always"
    errors = list(validator.iter_errors(broken))
    # The faults are reported at their exact places (a oneOf failure nests its reasons).
    found = {(tuple(e.absolute_path), e.message) for e in flatten(errors)}
    assert (
        ("services", "redis"),
        "Unevaluated properties are not allowed ('restart_policy' was unexpected)",
    ) in found
    assert (
        ("services", "api", "depends_on", "redis", "condition"),
        "'service_up' is not one of "
        "['service_started', 'service_healthy', 'service_completed_successfully']",
    ) in found
    assert {tuple(e.absolute_path)[:2] for e in errors} == {
        ("services", "api"),
        ("services", "redis"),
    }


def flatten(errors: list[jsonschema.ValidationError]) -> list[jsonschema.ValidationError]:
    out: list[jsonschema.ValidationError] = []
    for error in errors:
        out.append(error)
        out.extend(flatten(list(error.context or [])))
    return out


def test_every_depends_on_target_is_a_service_with_a_healthcheck(compose: dict[str, Any]) -> None:
    services = compose["services"]
    for name, svc in services.items():
        for target, spec in svc.get("depends_on", {}).items():
            assert target in services, f"{name} depends on unknown service {target}"
            assert spec["condition"] == "service_healthy"
            assert "healthcheck" in services[target], f"{target} has no healthcheck"


def test_every_service_has_a_healthcheck(compose: dict[str, Any]) -> None:
    missing = [n for n, svc in compose["services"].items() if "healthcheck" not in svc]
    assert missing == []


def test_every_bind_mounted_repo_path_exists(compose: dict[str, Any]) -> None:
    # Relative paths in a compose file resolve against the file's folder.
    sources = []
    for svc in compose["services"].values():
        for volume in svc.get("volumes", []):
            if isinstance(volume, dict) and volume["type"] == "bind":
                sources.append(volume["source"])
            elif isinstance(volume, str) and volume.startswith("."):
                sources.append(volume.split(":")[0])
        if "build" in svc:
            context = DEPLOY / svc["build"]["context"]
            assert (context / svc["build"]["dockerfile"]).is_file()
    assert sources, "the tables, Prometheus and Grafana files are mounted from the repo"
    missing = [s for s in sources if not (DEPLOY / s).exists()]
    assert missing == []


def test_named_volumes_are_declared(compose: dict[str, Any]) -> None:
    declared = set(compose.get("volumes", {}))
    used = {
        volume.split(":")[0]
        for svc in compose["services"].values()
        for volume in svc.get("volumes", [])
        if isinstance(volume, str) and not volume.startswith((".", "/"))
    }
    assert used and used <= declared


def test_one_worker_service_per_push_team(compose: dict[str, Any]) -> None:
    teams = [team for ts in worker_teams(compose).values() for team in ts]
    assert sorted(teams) == sorted(push_teams())


def test_redis_keeps_an_append_only_file_on_a_volume(compose: dict[str, Any]) -> None:
    redis = compose["services"]["redis"]
    command = redis["command"]
    assert command[command.index("--appendonly") + 1] == "yes"
    assert command[command.index("--appendfsync") + 1] == "everysec"
    data_dir = command[command.index("--dir") + 1]
    assert f"redis-data:{data_dir}" in redis["volumes"]


def test_every_redis_node_keeps_item_hashes_as_compact_as_the_embedded_one(
    compose: dict[str, Any],
) -> None:
    nodes = [s for s in compose["services"].values() if s.get("command", [""])[0] == "redis-server"]
    assert len(nodes) == 2
    for node in nodes:
        command = node["command"]
        value = command[command.index("--hash-max-listpack-value") + 1]
        assert value == str(HASH_MAX_LISTPACK_VALUE)


def test_usm_services_reach_redis_through_the_three_sentinels(compose: dict[str, Any]) -> None:
    services = compose["services"].items()
    sentinels = {n for n, s in services if "redis-sentinel" in str(s.get("command"))}
    assert len(sentinels) == 3
    for name, svc in usm_services(compose).items():
        target = parse_sentinel_url(svc["environment"]["REDIS_URL"])
        assert {host for host, _ in target.sentinels} == sentinels, name
        assert {port for _, port in target.sentinels} == {26379}, name
        assert target.service == "usm", name
        assert set(svc["depends_on"]) == {"redis", *sentinels}, name


def sentinel_conf(compose: dict[str, Any], name: str) -> list[str]:
    """The lines a sentinel service writes into its config file."""
    script = compose["services"][name]["command"][-1]
    return shlex.split(script.split(">", 1)[0])[2:]


def test_three_sentinels_watch_the_primary_with_a_quorum_of_two(compose: dict[str, Any]) -> None:
    for n in (1, 2, 3):
        conf = sentinel_conf(compose, f"sentinel-{n}")
        assert "sentinel monitor usm redis 6379 2" in conf
        assert "sentinel resolve-hostnames yes" in conf
        # Hostnames must resolve before `monitor` names one.
        assert conf.index("sentinel resolve-hostnames yes") < conf.index(
            "sentinel monitor usm redis 6379 2"
        )


def test_the_replica_follows_the_primary_and_both_refuse_writes_without_a_replica(
    compose: dict[str, Any],
) -> None:
    primary, replica = compose["services"]["redis"], compose["services"]["redis-replica"]
    command = replica["command"]
    assert command[command.index("--replicaof") + 1 : command.index("--replicaof") + 3] == [
        "redis",
        "6379",
    ]
    for node, name in ((primary, "redis"), (replica, "redis-replica")):
        c = node["command"]
        assert c[c.index("--appendonly") + 1] == "yes"
        assert c[c.index("--min-replicas-to-write") + 1] == "1"
        assert c[c.index("--replica-announce-ip") + 1] == name


def test_prometheus_loads_the_scrape_config_and_the_alert_rules(compose: dict[str, Any]) -> None:
    prometheus = compose["services"]["prometheus"]
    targets = {v["target"]: v["source"] for v in prometheus["volumes"] if isinstance(v, dict)}
    assert targets["/etc/prometheus/prometheus.yml"] == "./prometheus/prometheus.yml"
    assert targets["/etc/prometheus/alerts.yml"] == "./prometheus/alerts.yml"
    (config,) = load_yaml(DEPLOY / "prometheus" / "prometheus.yml")
    # Rule files resolve against the config file's folder, /etc/prometheus in the container.
    rule_files = {str(PurePosixPath("/etc/prometheus") / f) for f in config["rule_files"]}
    assert "/etc/prometheus/alerts.yml" in rule_files


def test_prometheus_scrape_targets_are_compose_services_or_aliases(
    compose: dict[str, Any],
) -> None:
    (config,) = load_yaml(DEPLOY / "prometheus" / "prometheus.yml")
    names = set(compose["services"])
    for svc in compose["services"].values():
        for network in (svc.get("networks") or {}).values():
            names.update((network or {}).get("aliases", []))
    hosts: set[str] = set()
    for job in config["scrape_configs"]:
        for static in job.get("static_configs", []):
            hosts.update(target.rpartition(":")[0] for target in static["targets"])
        for dns in job.get("dns_sd_configs", []):
            hosts.update(dns["names"])
    assert hosts, "prometheus.yml names its targets"
    assert hosts <= names


def test_a_name_shared_by_several_containers_is_discovered_not_scraped_as_one_target(
    compose: dict[str, Any],
) -> None:
    # A static target resolves to one of the containers per scrape, mixing their counters;
    # DNS service discovery (A records) scrapes each container as its own target.
    (config,) = load_yaml(DEPLOY / "prometheus" / "prometheus.yml")
    holders: dict[str, int] = {}
    for svc in compose["services"].values():
        for network in (svc.get("networks") or {}).values():
            for alias in (network or {}).get("aliases", []):
                holders[alias] = holders.get(alias, 0) + 1
    shared = {alias for alias, count in holders.items() if count > 1}
    assert shared == {"worker"}
    for job in config["scrape_configs"]:
        static = {
            target.rpartition(":")[0]
            for group in job.get("static_configs", [])
            for target in group["targets"]
        }
        assert not static & shared, f"job {job['job_name']} scrapes {static & shared} statically"
    discovered = {
        name
        for job in config["scrape_configs"]
        for dns in job.get("dns_sd_configs", [])
        if dns.get("type", "SRV") == "A"
        for name in dns["names"]
    }
    assert shared <= discovered


def test_every_worker_service_answers_to_the_worker_alias(compose: dict[str, Any]) -> None:
    for name in worker_teams(compose):
        aliases = compose["services"][name]["networks"]["default"]["aliases"]
        assert "worker" in aliases, name


def test_grafana_gets_the_provisioning_and_the_dashboards(compose: dict[str, Any]) -> None:
    grafana = compose["services"]["grafana"]
    targets = {v["target"]: v["source"] for v in grafana["volumes"] if isinstance(v, dict)}
    assert targets["/etc/grafana/provisioning"] == "./grafana/provisioning"
    providers = DEPLOY / "grafana" / "provisioning" / "dashboards"
    paths = {
        provider["options"]["path"]
        for file in providers.glob("*.y*ml")
        for doc in load_yaml(file)
        for provider in doc["providers"]
    }
    # The dashboards land where the provisioning file tells Grafana to look.
    assert paths and all(targets.get(path) == "./grafana/dashboards" for path in paths)
    assert list((DEPLOY / "grafana" / "dashboards").glob("*.json"))


def test_grafana_datasources_point_at_the_prometheus_service(compose: dict[str, Any]) -> None:
    sources = DEPLOY / "grafana" / "provisioning" / "datasources"
    urls = [
        ds["url"]
        for file in sources.glob("*.y*ml")
        for doc in load_yaml(file)
        for ds in doc["datasources"]
    ]
    assert urls == ["http://prometheus:9090"]
    assert "prometheus" in compose["services"]


def test_published_ports_bind_to_loopback_only(compose: dict[str, Any]) -> None:
    for name, svc in compose["services"].items():
        for port in svc.get("ports", []):
            assert str(port).startswith("127.0.0.1:"), f"{name} publishes {port} on every address"


def test_a_service_syncs_every_source_periodically_with_the_apis_image_env_and_secrets(
    compose: dict[str, Any],
) -> None:
    """Reconciliation runs by itself: tickets whose webhooks were lost are caught up."""
    services = usm_services(compose)
    sync, api = services["sources-sync"], services["api"]
    command = sync["command"]
    assert command[:3] == ["sources", "sync", "--all"]
    every = float(command[command.index("--every") + 1])
    assert 0 < every <= 900
    assert (sync["image"], sync["build"]) == (api["image"], api["build"])
    shared = ("REDIS_URL", "USM_TABLES", "USM_SOURCES_SECRETS_FILE")
    assert {k: sync["environment"][k] for k in shared} == {k: api["environment"][k] for k in shared}
    assert sync["secrets"] == api["secrets"] == ["usm-sources"]
    assert sync["environment"]["USM_SOURCES_SECRETS_FILE"] == "/run/secrets/usm-sources"
    default = compose["secrets"]["usm-sources"]["file"].partition(":-")[2].rstrip("}")
    assert (DEPLOY / default).is_file()
    # Healthy while every source's last complete sync is recent (longer than a run's period).
    test = sync["healthcheck"]["test"]
    assert test[:5] == ["CMD", "usm", "sources", "synced", "--all"]
    assert float(test[test.index("--within") + 1]) >= 2 * every
    assert sync["volumes"] == api["volumes"]  # the same tables
