"""Replaying a table change over recorded source events maps each payload with each set's mapping.

A real ``usm api`` on a real Redis records the Jira webhooks it receives (accepted or refused);
``usm tables replay --from-events`` then shows, per ticket, the decision under the set in force
and under a proposed set whose ``sources.toml`` maps Jira's Impact differently.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis

from service.governance.event_log import read_events
from service.sources.signatures import Scheme, sign
from tests.integration.governance.server import ApiProcess
from tests.support.processes import ROOT, RUN_CLI, wait_for

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "sources" / "jira"
SECRET = "jira-webhook-secret"


def _post(api: ApiProcess, body: bytes) -> httpx.Response:
    headers = sign(Scheme.HMAC_SHA256, SECRET, body, timestamp=1772442000)
    return httpx.post(
        f"{api.url}/v1/sources/jira/events",
        content=body,
        headers={"Content-Type": "application/json", **headers},
        timeout=10,
    )


def _proposed(tables: Path, target: Path) -> Path:
    """2026.1 as version 2026.2, with Jira's Impact mapped differently."""
    shutil.copytree(tables / "2026.1", target)
    set_toml = target / "set.toml"
    set_toml.write_text(set_toml.read_text().replace('version = "2026.1"', 'version = "2026.2"'))
    sources = target / "sources.toml"
    text = sources.read_text()
    old = '"Extensive / Widespread" = "organisation"\n'
    assert old in text
    sources.write_text(
        text.replace(
            old, '"Extensive / Widespread" = "department"\n"Catastrophic" = "organisation"\n'
        )
    )
    return target


def _replay(url: str, old: str, new: Path, *extra: str) -> subprocess.CompletedProcess[bytes]:
    args = ["tables", "replay", "--from-events", url, "--old", old, "--new", str(new), *extra]
    return subprocess.run(
        [sys.executable, "-c", RUN_CLI, *args],
        cwd=ROOT,
        capture_output=True,
        check=False,
        timeout=120,
    )


@pytest.fixture
def api(tmp_path: Path, single_set_tables: Path, redis_url: str) -> Any:
    env = {
        "REDIS_URL": redis_url,
        "USM_SOURCE_JIRA_SECRET": SECRET,
        "USM_DECISION_LOG_FLUSH": "0.1",
    }
    process = ApiProcess(single_set_tables, tmp_path / "api.log", env)
    try:
        yield process
    finally:
        process.stop()


def test_replay_shows_each_tickets_decision_under_the_new_sets_mapping(
    api: ApiProcess, single_set_tables: Path, redis_url: str, tmp_path: Path
) -> None:
    created = (FIXTURES / "issue_created.json").read_bytes()  # SD-7: Significant x High
    updated = (FIXTURES / "issue_updated.json").read_bytes()  # SD-7: Extensive x High
    unmapped = (
        (FIXTURES / "issue_created_unmapped_impact.json")
        .read_bytes()
        .replace(b'"SD-7"', b'"SD-20"')
    )  # Catastrophic: no such Impact in 2026.1's map
    assert _post(api, created).json()["decision"]["priority"]["name"] == "P2"
    assert _post(api, updated).json()["decision"]["priority"]["name"] == "P1"
    assert _post(api, unmapped).status_code == 422
    client = redis.Redis.from_url(redis_url)
    try:
        recorded = wait_for("3 recorded events", lambda: len(read_events(client, 10)) == 3)
    finally:
        client.close()
    assert recorded

    new = _proposed(single_set_tables, tmp_path / "2026.2")
    done = _replay(redis_url, f"{single_set_tables}@2026.1", new, "--format", "json")
    assert done.returncode == 0, done.stderr.decode()
    report = json.loads(done.stdout)
    assert (report["old_version"], report["new_version"]) == ("2026.1", "2026.2")
    assert (report["events"], report["tickets"], report["changed"]) == (3, 2, 2)
    assert (report["priority_changed"], report["refused"]) == (1, 0)
    by_ticket = {r["ticket_id"]: r for r in report["results"]}
    # SD-7's latest event (Extensive / Widespread) now maps to department: P1 -> P2.
    sd7 = by_ticket["SD-7"]
    assert sd7["events"] == 2
    assert sd7["before"] == {"state": "open", "priority": "P1", "team": "infrastructure"}
    assert sd7["after"] == {"state": "open", "priority": "P2", "team": "infrastructure"}
    # SD-20 was refused with a 422; the new map reads Catastrophic as organisation.
    sd20 = by_ticket["SD-20"]
    assert sd20["before"]["state"] == "refused"
    assert sd20["before"]["error"].startswith("unknown impact 'Catastrophic' - at tool field")
    assert sd20["after"] == {"state": "open", "priority": "P1", "team": "infrastructure"}

    markdown = _replay(redis_url, f"{single_set_tables}@2026.1", new)
    assert markdown.returncode == 0, markdown.stderr.decode()
    text = markdown.stdout.decode()
    assert "**2 tickets would change**: 1 in priority, 0 in team, 0 refused" in text
    assert "| jira | SD-7 | P1 infrastructure | P2 infrastructure |" in text


def test_replay_against_a_set_without_the_source_refuses_its_tickets(
    api: ApiProcess, single_set_tables: Path, redis_url: str, tmp_path: Path
) -> None:
    assert _post(api, (FIXTURES / "issue_created.json").read_bytes()).status_code == 200
    client = redis.Redis.from_url(redis_url)
    try:
        wait_for("the recorded event", lambda: read_events(client, 10))
    finally:
        client.close()
    new = _proposed(single_set_tables, tmp_path / "2026.2")
    (new / "sources.toml").write_text(
        (new / "sources.toml").read_text().replace('name = "jira"', 'name = "jira_old"')
    )
    done = _replay(redis_url, f"{single_set_tables}@2026.1", new, "--format", "json")
    assert done.returncode == 0, done.stderr.decode()
    (result,) = json.loads(done.stdout)["results"]
    assert result["after"] == {"state": "no source", "error": "no source 'jira' in this set"}
