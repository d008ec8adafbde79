"""``usm serve`` with no REDIS_URL: its own Redis, workers and API; items survive a restart."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import redis

from service.dispatch import keys
from tests.e2e.dispatch.conftest import RUN_CLI, wait_for
from tests.support.redis_server import free_port, without_preload
from tests.support.tables import single_set_tables

INCIDENT = {"type": "incident", "impact": "user", "urgency": "low", "source": "e2e"}


def _serve(tmp: Path, port: int, log: str, redis_port: int) -> subprocess.Popen[bytes]:
    # Its embedded redis-server inherits the env, and cannot start under libfaketime.
    env = {k: v for k, v in without_preload().items() if k != "REDIS_URL"}
    env.update(
        USM_DATA_DIR=str(tmp / "var"),
        USM_TABLES=str(single_set_tables(tmp)),
        USM_PORT=str(port),
        USM_REDIS_PORT=str(redis_port),
    )
    out = open(tmp / log, "wb")  # noqa: SIM115
    proc = subprocess.Popen(
        [sys.executable, "-c", RUN_CLI, "serve"], cwd=tmp, env=env, stdout=out, stderr=out
    )
    out.close()
    return proc


def _get(url: str) -> Any:
    try:
        r = httpx.get(url, timeout=2)
    except httpx.HTTPError:
        return None
    return r.json() if r.status_code == 200 else None


def _redis_pids(data: Path) -> list[str]:
    pidfile = data / "redis" / "redis.pid"
    return [pidfile.read_text().strip()] if pidfile.exists() else []


def test_usm_serve_runs_redis_workers_and_api_replaces_dead_workers_and_keeps_items(
    tmp_path: Path,
) -> None:
    port, redis_port = free_port(), free_port()
    base = f"http://127.0.0.1:{port}"
    serve = _serve(tmp_path, port, "serve-1.log", redis_port)
    try:
        wait_for("the API", lambda: _get(f"{base}/healthz"), timeout=40)
        pid = _redis_pids(tmp_path / "var")
        handled = httpx.post(f"{base}/v1/items", json={**INCIDENT, "external_id": "A"}).json()
        wait_for(
            "a worker to complete the item",
            lambda: (_get(f"{base}/v1/items/{handled['id']}") or {}).get("state") == "completed",
        )
        teams = {t["name"]: t["workers"]["up"] for t in _get(f"{base}/v1/teams")["teams"]}
        assert teams["service_desk"] == 1 and teams["change_advisory"] == 0
        # A worker that dies is replaced by usm serve.
        conn = redis.Redis(port=redis_port)
        [old] = [n.decode() for n in conn.zrange(keys.workers_key("service_desk"), 0, -1)]
        os.kill(int(old.split("-")[-2]), signal.SIGKILL)

        def replaced() -> bool:
            names = [n.decode() for n in conn.zrange(keys.workers_key("service_desk"), 0, -1)]
            return any(n != old for n in names)

        wait_for("a replacement worker", replaced)
        again = httpx.post(f"{base}/v1/items", json={**INCIDENT, "external_id": "A2"}).json()
        wait_for(
            "the replacement to complete an item",
            lambda: (_get(f"{base}/v1/items/{again['id']}") or {}).get("state") == "completed",
        )
        conn.close()
        waiting = httpx.post(
            f"{base}/v1/items", json={**INCIDENT, "type": "change", "external_id": "B"}
        ).json()
        assert waiting["team"] == "change_advisory" and waiting["state"] == "queued"
    finally:
        serve.send_signal(signal.SIGTERM)
        assert serve.wait(60) == 0, (tmp_path / "serve-1.log").read_text()
    assert pid and not Path(f"/proc/{pid[0]}").exists(), "embedded Redis outlived usm serve"
    assert (tmp_path / "var" / "redis" / "appendonlydir").is_dir()

    serve = _serve(tmp_path, port, "serve-2.log", redis_port)
    try:
        wait_for("the API again", lambda: _get(f"{base}/healthz"), timeout=40)
        again = _get(f"{base}/v1/items/{waiting['id']}")
        assert again["state"] == "queued" and again["external_id"] == "B"
        assert _get(f"{base}/v1/items/{handled['id']}")["state"] == "completed"
        retry = httpx.post(
            f"{base}/v1/items", json={**INCIDENT, "type": "change", "external_id": "B"}
        )
        assert (retry.status_code, retry.json()["id"]) == (200, waiting["id"])
    finally:
        serve.send_signal(signal.SIGTERM)
        assert serve.wait(60) == 0
