"""A real ``usm api`` process: SIGUSR1, the file watch, versions and the decision log."""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis

from service.files.loader import load_set
from service.governance.decision_log import read_log
from tests.integration.governance.server import ApiProcess
from tests.support.tables import future_copy

TABLES = Path(__file__).resolve().parents[3] / "tables"


def _until(check: Callable[[], Any], timeout: float = 60.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(0.05)


@pytest.fixture
def root(tmp_path: Path) -> Path:
    root = tmp_path / "tables"
    shutil.copytree(TABLES / "2026.1", root / "2026.1")
    return root


@pytest.fixture
def api(
    tmp_path: Path, root: Path, redis_url: str, request: pytest.FixtureRequest
) -> Iterator[ApiProcess]:
    env = {"USM_SERVER": "uvicorn", "REDIS_URL": redis_url, **getattr(request, "param", {})}
    process = ApiProcess(root, tmp_path / "api.log", env)
    yield process
    process.stop()


NO_WATCH = [
    pytest.param({"USM_TABLES_WATCH_INTERVAL": "0", "USM_SERVER": s}, id=s)
    for s in ("uvicorn", "granian")
]


@pytest.mark.timeout(240)
@pytest.mark.parametrize("api", NO_WATCH, indirect=True)
def test_sigusr1_reloads_the_tables_without_a_restart(api: ApiProcess, root: Path) -> None:
    pid = api.running.pid
    path = root / "2026.1" / "levels.toml"
    path.write_text(path.read_text().replace('response = "PT30M"', 'response = "PT20M"'))
    new_hash = load_set(root / "2026.1").hash
    time.sleep(0.5)  # the watch is off: nothing changes until the signal
    assert httpx.get(f"{api.url}/v1/tables/").json()["hash"] != new_hash
    api.reload_signal()
    assert _until(lambda: httpx.get(f"{api.url}/v1/tables/").json()["hash"] == new_hash)
    assert api.running.pid == pid and api.running.poll() is None


@pytest.mark.timeout(240)
def test_a_new_version_directory_appears_in_versions_by_the_file_watch(
    api: ApiProcess, root: Path
) -> None:
    at = future_copy(root / "2027.1")  # in the future whatever today's date

    def versions() -> list[dict[str, Any]] | None:
        body: list[dict[str, Any]] = httpx.get(f"{api.url}/v1/tables/versions").json()
        return body if len(body) == 2 else None

    listed = _until(versions)
    assert listed is not None, "the watch did not pick up tables/2027.1"
    assert [(v["version"], v["active"]) for v in listed] == [("2026.1", True), ("2027.1", False)]
    assert listed[1]["effective_from"] == at.strftime("%Y-%m-%dT%H:%M:%SZ")
    # The future set answers when asked for by name (replay, audit), the active one otherwise.
    call = {"type": "incident", "impact": "group", "urgency": "high"}
    assert httpx.post(f"{api.url}/v1/priority", json=call).json()["priority"]["name"] == "P3"
    asked = httpx.post(f"{api.url}/v1/priority", params={"version": "2027.1"}, json=call).json()
    assert (asked["table_version"], asked["priority"]["name"]) == ("2027.1", "P2")


@pytest.mark.timeout(240)
def test_every_decision_lands_in_the_decision_log_within_a_second(
    api: ApiProcess, redis_client: redis.Redis
) -> None:
    call = {"type": "risk", "impact": "group", "likelihood": "possible", "proximity": "near"}
    batch = {"calls": [{"type": "incident", "impact": i, "urgency": 1} for i in (1, 2, 3, 4)]}
    decision = httpx.post(f"{api.url}/v1/priority", json=call).json()
    assert httpx.post(f"{api.url}/v1/priority/batch", json=batch).status_code == 200
    entries = _until(lambda: (e := read_log(redis_client, 100)) and len(e) == 5 and e, 2.0)
    assert entries, "decisions did not reach the stream"
    first = entries[0]
    assert (first.version, first.hash, first.priority, first.team) == (
        decision["table_version"],
        decision["table_hash"],
        decision["priority"]["name"],
        decision["team"],
    )
    assert [e.call.impact for e in entries[1:]] == [1, 2, 3, 4]


@pytest.mark.timeout(240)
def test_scoring_answers_with_redis_down_and_the_log_counts_the_drops(
    api: ApiProcess, redis_server: Any
) -> None:
    call = {"type": "incident", "impact": "user", "urgency": "low"}
    redis_server.stop()
    try:
        for _ in range(20):
            assert httpx.post(f"{api.url}/v1/priority", json=call).status_code == 200
        time.sleep(0.6)  # a few flush attempts against the stopped Redis

        def dropped() -> float:
            text = httpx.get(f"{api.url}/metrics").text
            for line in text.splitlines():
                if line.startswith('usm_decision_log_dropped_total{reason="redis_down"}'):
                    return float(line.rsplit(" ", 1)[1])
            return 0.0

        assert _until(lambda: dropped() >= 20)
    finally:
        redis_server.start()


@pytest.mark.timeout(240)
@pytest.mark.parametrize("api", NO_WATCH, indirect=True)
def test_sigusr1_with_invalid_tables_keeps_the_running_set_and_the_service_up(
    api: ApiProcess, root: Path
) -> None:
    running = httpx.get(f"{api.url}/v1/tables/").json()["hash"]
    path = root / "2026.1" / "matrix.toml"
    path.write_text(path.read_text().replace('high = "P3"', 'high = "P9"', 1))
    api.reload_signal()
    assert _until(lambda: "tables refused (sigusr1)" in api.log())
    assert api.running.poll() is None
    assert httpx.get(f"{api.url}/readyz").json()["table_hash"] == running
    refused = httpx.get(f"{api.url}/metrics").text
    assert 'usm_table_reloads_total{result="rejected"} 1.0' in refused
