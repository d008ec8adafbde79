"""Every `usm ...` command line the deployment files run is one the usm CLI accepts.

The image's CMD, each compose service built from the Dockerfile and each Kubernetes container are
parsed with the real argparse parser (``service.cli.main.build_parser``), so a renamed sub-command
or option breaks this test rather than a production rollout.
"""

from __future__ import annotations

import argparse
import contextlib
import io

import pytest

from service.cli.main import build_parser
from tests.deploy.support import DEPLOY, ROOT, load_yaml, parse_dockerfile


def command_lines() -> list[tuple[str, list[str]]]:
    """(where, argv) of every usm command line in Dockerfile, compose.yaml and deploy/k8s
    (Deployments and CronJobs, and compose health checks that run ``usm``)."""
    out: list[tuple[str, list[str]]] = []
    cmd = [i for i in parse_dockerfile(ROOT / "Dockerfile") if i.keyword == "CMD"][-1]
    argv = cmd.exec_form()
    assert argv is not None
    out.append(("Dockerfile CMD", argv))
    (compose,) = load_yaml(DEPLOY / "compose.yaml")
    for name, svc in compose["services"].items():
        if svc.get("build", {}).get("dockerfile") == "Dockerfile":
            out.append((f"compose.yaml {name}", svc["command"]))
            test = svc.get("healthcheck", {}).get("test", [])
            if test[:2] == ["CMD", "usm"]:
                out.append((f"compose.yaml {name} healthcheck", test[2:]))
    for path in sorted((DEPLOY / "k8s").rglob("*.yaml")):
        for doc in load_yaml(path):
            if doc.get("kind") not in ("Deployment", "CronJob"):
                continue
            template = doc["spec"].get("jobTemplate", doc)["spec"]["template"]
            for container in template["spec"]["containers"]:
                if container.get("image", "").startswith("usm-dispatch"):
                    where = f"{path.relative_to(DEPLOY)} {doc['metadata']['name']}"
                    out.append((where, container["args"]))
    return out


COMMANDS = command_lines()


def parse(argv: list[str]) -> argparse.Namespace:
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        try:
            return build_parser().parse_args(argv)
        except SystemExit:
            pytest.fail(f"usm {' '.join(argv)}: {err.getvalue().strip()}")


def test_the_deployment_files_run_the_api_and_a_worker_per_push_team() -> None:
    names = [argv[0] for _, argv in COMMANDS]
    assert names.count("api") == 3  # Dockerfile, compose, k8s
    assert names.count("worker") >= 2


@pytest.mark.parametrize(("where", "argv"), COMMANDS, ids=[w for w, _ in COMMANDS])
def test_usm_accepts_the_command_line(where: str, argv: list[str]) -> None:
    args = parse(argv)
    assert args.command == argv[0]
    assert callable(args.func)


def test_the_deployment_files_schedule_the_reconciliation_of_every_source() -> None:
    syncs = {where: argv for where, argv in COMMANDS if argv[:2] == ["sources", "sync"]}
    assert syncs == {
        "compose.yaml sources-sync": ["sources", "sync", "--all", "--every", "300"],
        "k8s/base/sources-sync-cronjob.yaml usm-sources-sync": ["sources", "sync", "--all"],
    }
    for argv in syncs.values():
        assert parse(argv).all_sources is True
