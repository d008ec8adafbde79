"""The health checks and stop signals of the deployment files, run against real processes.

No container runs here, so the checks run as the container would run them: the exact command
of the Dockerfile's HEALTHCHECK and of compose's healthchecks, against a real `usm api` (real
Redis, loopback), with the environment the image sets. Each must pass while the service is up
and fail once it is gone; `usm api` must exit promptly on SIGTERM, well inside the grace period
the manifests give it.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.deploy.support import DEPLOY, ROOT, load_yaml, parse_dockerfile
from tests.support.redis_server import free_port

STOP_WITHIN_SECONDS = 10.0
"""Well inside the API's terminationGracePeriodSeconds (30) and compose's stop_grace_period."""


def dockerfile_healthcheck() -> list[str]:
    (check,) = [i for i in parse_dockerfile(ROOT / "Dockerfile") if i.keyword == "HEALTHCHECK"]
    argv: list[str] = json.loads(check.args.split(" CMD ", 1)[1])
    return argv


def compose_healthcheck(service: str) -> list[str]:
    (compose,) = load_yaml(DEPLOY / "compose.yaml")
    test: list[str] = compose["services"][service]["healthcheck"]["test"]
    assert test[0] == "CMD"
    return test[1:]


def run_check(argv: list[str], env: dict[str, str]) -> int:
    # `python` in the image is the venv's interpreter; here it is this one.
    assert argv[0] == "python"
    result = subprocess.run(
        [sys.executable, *argv[1:]], env=env, capture_output=True, timeout=30, check=False
    )
    return result.returncode


def image_env(port: int, redis_url: str) -> dict[str, str]:
    """What the image's ENV sets, with loopback instead of 0.0.0.0 (no keys in this test)."""
    return {
        **os.environ,
        "USM_HOST": "127.0.0.1",
        "USM_PORT": str(port),
        "USM_TABLES": str(ROOT / "tables"),
        "REDIS_URL": redis_url,
        "PYTHONUNBUFFERED": "1",
    }


@pytest.fixture
def api(redis_url: str, tmp_path: Path) -> Iterator[tuple[subprocess.Popen[bytes], dict[str, str]]]:
    port = free_port()
    env = image_env(port, redis_url)
    log = (tmp_path / "api.log").open("wb")
    usm = str(Path(sys.executable).parent / "usm")
    proc = subprocess.Popen([usm, "api"], env=env, cwd=tmp_path, stdout=log, stderr=log)
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            assert proc.poll() is None, (tmp_path / "api.log").read_text()
            try:
                if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        else:
            pytest.fail("usm api did not become ready in 30 s")
        yield proc, env
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
        log.close()


def stop(proc: subprocess.Popen[Any]) -> tuple[int, float]:
    started = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    code = proc.wait(STOP_WITHIN_SECONDS)
    return code, time.monotonic() - started


def test_the_image_healthcheck_passes_while_the_api_serves_and_fails_after(
    api: tuple[subprocess.Popen[bytes], dict[str, str]],
) -> None:
    proc, env = api
    check = dockerfile_healthcheck()
    assert run_check(check, env) == 0
    stop(proc)
    assert run_check(check, env) != 0


def test_the_compose_api_healthcheck_asks_readyz_and_passes(
    api: tuple[subprocess.Popen[bytes], dict[str, str]],
) -> None:
    _, env = api
    check = compose_healthcheck("api")
    assert "/readyz" in check[-1]
    assert run_check(check, env) == 0


def test_the_api_exits_cleanly_and_promptly_on_sigterm(
    api: tuple[subprocess.Popen[bytes], dict[str, str]],
) -> None:
    proc, _ = api
    code, took = stop(proc)
    assert code == 0
    assert took < STOP_WITHIN_SECONDS


def compose_worker(service: str) -> list[str]:
    (compose,) = load_yaml(DEPLOY / "compose.yaml")
    command: list[str] = compose["services"][service]["command"]
    return command


def test_a_worker_passes_its_compose_healthcheck_and_stops_on_sigterm(
    redis_url: str, tmp_path: Path
) -> None:
    # The compose command and check, on a free port instead of 9100 (this machine is shared).
    port = free_port()
    command = [str(port) if word == "9100" else word for word in compose_worker("worker-security")]
    check = [part.replace(":9100/", f":{port}/") for part in compose_healthcheck("worker-security")]
    assert f":{port}/metrics" in check[-1]
    env = image_env(free_port(), redis_url)
    usm = str(Path(sys.executable).parent / "usm")
    with (tmp_path / "worker.log").open("wb") as log:
        proc = subprocess.Popen([usm, *command], env=env, cwd=tmp_path, stdout=log, stderr=log)
        try:
            deadline = time.monotonic() + 30
            while run_check(check, env) != 0:
                assert proc.poll() is None, (tmp_path / "worker.log").read_text()
                assert time.monotonic() < deadline, "worker metrics never answered"
                time.sleep(0.2)
            body = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=2).text
            assert 'team="security"' in body
            code, took = stop(proc)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait(10)
    assert code == 0
    assert took < STOP_WITHIN_SECONDS
    assert run_check(check, env) != 0
