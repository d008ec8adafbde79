"""``usm serve`` writes one log a person can read: one format from every process, a banner that
says where everything is, one access line per request, one line per table change, and no value
from a request can forge a line."""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path

import httpx
import pytest

from service.security.keys import hash_key, new_key
from tests.e2e.conftest import ServeFactory
from tests.support.processes import wait_for

pytestmark = pytest.mark.timeout(180)

LINE = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3} (DEBUG|INFO|WARNING|ERROR) [\w.]+: ")
"""A record in the text format; a traceback's lines follow it indented by four spaces."""
FORGED = "T1\n2026-11-30 11:00:00.000 CRITICAL usm.security: all keys leaked"
INCIDENT = {"type": "incident", "impact": "user", "urgency": "low", "source": "log"}
PUSH_TEAMS = 4
STARTED = re.compile(r" INFO usm\.worker: worker \S+: teams \[", re.M)


def json_starts(log: str) -> list[str]:
    """The JSON records of workers saying they started (a line still being written is skipped)."""
    records = []
    for line in log.splitlines():
        try:
            records.append(json.loads(line))
        except ValueError:
            continue
    return [
        r["message"]
        for r in records
        if r.get("logger") == "usm.worker" and ": teams [" in r.get("message", "")
    ]


def test_every_process_writes_one_readable_format_and_says_each_thing_once(
    tmp_path: Path, serve_factory: ServeFactory
) -> None:
    # DEBUG shows the workers' own notes, so the test can see them follow a table change.
    serve = serve_factory(USM_LOG_LEVEL="DEBUG", USM_TABLES_WATCH_INTERVAL="0.2")
    serve.start()
    serve.wait_ready()
    # Every worker must hold the first set before the edit: /readyz speaks for the API only, and a
    # worker still starting on a loaded machine would load the edited set and have no change to log.
    wait_for(
        "every worker to start",
        lambda: len(STARTED.findall(serve.log())) == PUSH_TEAMS,
        60,
    )
    item = httpx.post(f"{serve.url}/v1/items", json={**INCIDENT, "external_id": FORGED}).json()
    wait_for(
        "the worker to handle the item",
        lambda: httpx.get(f"{serve.url}/v1/items/{item['id']}").json()["state"] == "completed",
    )
    assert httpx.get(f"{serve.url}/nowhere").status_code == 404
    levels = tmp_path / "tables" / "2026.1" / "levels.toml"
    levels.write_text(levels.read_text().replace('response = "PT30M"', 'response = "PT20M"'))
    wait_for(
        "every worker to follow the new table set",
        lambda: serve.log().count(": table set 2026.1 in force; teams") == PUSH_TEAMS,
        60,
    )
    # The banner's rq command runs as printed, in a shell that has only the usual PATH (the
    # environment's bin is not on it after `scripts/dev serve`), and sees this service's queues.
    shown = re.search(r"see the queues with: (.+ info --url \S+)\)$", serve.log(), re.M)
    assert shown, serve.log()
    rq = subprocess.run(
        ["bash", "-c", shown[1]], capture_output=True, text=True, timeout=120, check=False,
        cwd=tmp_path, env={"PATH": os.defpath, "HOME": str(tmp_path)},
    )  # fmt: skip
    assert rq.returncode == 0, rq.stdout + rq.stderr
    assert "service_desk" in rq.stdout, rq.stdout
    assert serve.stop() == 0
    log = serve.log()
    lines = log.splitlines()
    bad = [line for line in lines if not LINE.match(line) and not line.startswith("    ")]
    assert not bad, bad
    info = [line for line in lines if " DEBUG " not in line[:30]]

    # Said once, though API and workers all start.
    assert sum("no API keys configured" in line for line in lines) == 1
    # The banner names where everything is.
    redis_url = re.search(r"Redis: (redis://127\.0\.0\.1:\d+/0) \(embedded", log)
    assert redis_url, log
    assert f"rq info --url {redis_url[1]}" in log
    assert f"API: http://127.0.0.1:{serve.port} " in log
    assert f"data dir: {tmp_path / 'var'}" in log
    assert re.search(r"workers: service_desk \(pid \d+\), infrastructure \(pid \d+\)", log)
    # One access line per request, with the key's name ("local": no keys configured).
    assert re.search(r" INFO usm\.access: POST /v1/items 201 \d+\.\dms key=local$", log, re.M)
    assert re.search(r" INFO usm\.access: GET /nowhere 404 \d+\.\dms key=-$", log, re.M)
    # The id's line break is written out: it stays inside the worker's line.
    assert not any("CRITICAL" in line[:30] for line in lines)
    assert "T1\\n2026-11-30 11:00:00.000 CRITICAL usm.security: all keys leaked" in log
    # One line for the table change, from the API; the workers keep theirs at DEBUG.
    assert sum("tables reloaded (watch)" in line for line in info) == 1
    assert not [line for line in info if "usm.worker" in line and "table" in line]


def test_json_lines_on_request_with_the_key_name_never_the_key(
    serve_factory: ServeFactory,
) -> None:
    key = new_key()
    serve = serve_factory(
        USM_LOG_FORMAT="json", USM_API_KEYS=f"ticketing:score,dispatch:{hash_key(key)}"
    )
    serve.start()
    serve.wait_ready()
    scored = httpx.post(
        f"{serve.url}/v1/priority",
        json={"type": "incident", "impact": "user", "urgency": "low"},
        headers={"Authorization": f"Bearer {key}"},
    )
    assert scored.status_code == 200
    refused = httpx.post(f"{serve.url}/v1/priority", json={}, headers={"X-API-Key": "wrong"})
    assert refused.status_code == 401
    # The workers' lines are asserted below: /readyz speaks for the API only, and on a loaded
    # machine a stop can come before a worker has started (and so before it wrote anything).
    wait_for("every worker to start", lambda: len(json_starts(serve.log())) == PUSH_TEAMS, 60)
    assert serve.stop() == 0
    log = serve.log()
    records = [json.loads(line) for line in log.splitlines()]
    assert {"usm.serve", "usm.worker", "uvicorn.error", "usm.access"} <= {
        r["logger"] for r in records
    }
    access = [r for r in records if r["logger"] == "usm.access" and r["path"] == "/v1/priority"]
    assert [(r["method"], r["status"], r["key"]) for r in access] == [
        ("POST", 200, "ticketing"),
        ("POST", 401, "-"),
    ]
    assert all(isinstance(r["duration_ms"], float) for r in access)
    assert key not in log and "wrong" not in log and "Bearer" not in log
