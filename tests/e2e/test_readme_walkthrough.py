"""The README's item walk-through, run as written against a real ``usm api`` and real Redis.

The shell block is taken from README.md as is; only ``localhost:8000`` becomes the test server's
address. A ``curl`` function around the real curl records each request's method, path and
status, so every step is checked, not just the last one.
"""

from __future__ import annotations

import os
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.security.process import ApiProcess

ROOT = Path(__file__).resolve().parents[2]

EXPECTED = [
    "POST /v1/items 201",
    "GET /v1/items/{id} 200",
    "PATCH /v1/items/{id} 200",
    "GET /v1/teams 200",
    "GET /v1/teams/change_advisory/queue 200",
    "POST /v1/teams/change_advisory/claim 200",
    "POST /v1/items/{id}/release 200",
    "POST /v1/teams/change_advisory/claim 200",
    "POST /v1/items/{id}/complete 200",
    "POST /v1/items 201",
    "DELETE /v1/items/{id} 200",
    "GET /v1/dead-letters 200",
]

CURL_SHIM = """
curl() {
    command curl --write-out '%{stderr}%{method} %{url_effective} %{http_code}\\n' "$@"
}
"""


def walkthrough() -> str:
    """The README's shell block that queues items (the one after "Queue work for a team")."""
    text = (ROOT / "README.md").read_text()
    after = text[text.index("Queue work for a team") :]
    match = re.search(r"```sh\n(.*?)```", after, re.S)
    assert match, "README: no sh block after 'Queue work for a team'"
    return match.group(1)


@pytest.fixture
def api(tmp_path: Path, redis_url: str) -> Iterator[ApiProcess]:
    server = ApiProcess(tmp_path / "api.log", {"REDIS_URL": redis_url})
    server.start()
    yield server
    server.stop()


def test_the_readme_item_walkthrough_works_as_written(api: ApiProcess, tmp_path: Path) -> None:
    block = walkthrough()
    assert block.count("localhost:8000") >= 10
    script = CURL_SHIM + block.replace("localhost:8000", f"127.0.0.1:{api.port}")
    result = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", script],
        capture_output=True, text=True, timeout=120, check=False, cwd=tmp_path,
        env={**os.environ, "PATH": os.environ["PATH"]},
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    requests = [line.split() for line in result.stderr.splitlines()]
    ids = [m[1] for _, url, _ in requests if (m := re.search(r"/v1/items/([^/]+)", url))]
    steps = [
        f"{method} {re.sub(r'/v1/items/[^/]+', '/v1/items/{id}', url.split(str(api.port))[1])} "
        f"{status}"
        for method, url, status in requests
    ]
    assert steps == EXPECTED, result.stderr
    # What the walk-through did is what the service holds: one change done, one wish cancelled.
    change, wish = ids[0], ids[-1]
    assert set(ids) == {change, wish}
    with httpx.Client(base_url=api.url, timeout=10) as client:
        done = client.get(f"/v1/items/{change}").json()
        cancelled = client.get(f"/v1/items/{wish}").json()
    assert (done["state"], cancelled["state"]) == ("completed", "cancelled")
    assert done["decision"]["impact"]["name"] == "organisation"
    events = [h["event"] for h in done["history"]]
    assert events[0] == "enqueued" and events[-1] == "completed", events
