"""``usm sources sync --all`` (the scheduled reconciliation) and ``usm sources synced``, run as
processes.

Every source's tool is the Zammad search stand-in of the reconcile contracts: Zammad's search is
served, every other tool's search is refused (404), as a tool that is down or misconfigured
would. One failing tool must not stop the others, the run must say which failed and exit 1, and
the health check must name the sources whose last complete sync is too old.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from datetime import UTC, datetime

import pytest

from service.sources.sync import last_sync
from tests.e2e.sources.test_reconcile_contracts import CONTRACTS, Running, running
from tests.support.processes import ROOT, RUN_CLI, wait_for

__all__ = ["running"]  # the fixture, shared with the reconcile contracts

ZAMMAD = [CONTRACTS[2]]
FAILING = ("rt", "jira", "jira_automation", "servicenow", "glpi")
"""The other sources with a write-back in 2026.1: their searches are refused here."""


def _every_tool_at_the_stand_in(running: Running) -> None:
    sources = running.tables / "2026.1" / "sources.toml"
    url = f'base_url = "{running.receiver.url}"'
    sources.write_text(re.sub(r'base_url = "[^"]*"', url, sources.read_text()))


def _usm(running: Running, *argv: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "USM_TABLES": str(running.tables), **running.env}
    return subprocess.run(
        [sys.executable, "-c", RUN_CLI, *argv],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )


@pytest.mark.parametrize("running", ZAMMAD, ids=["zammad"], indirect=True)
def test_sync_all_syncs_each_source_and_a_failing_tool_does_not_stop_the_others(
    running: Running,
) -> None:
    _every_tool_at_the_stand_in(running)
    done = _usm(running, "sources", "sync", "--all")
    assert done.returncode == 1, done.stderr
    failed = [line.split(":", 1)[0] for line in done.stderr.splitlines()]
    assert failed == [f"usm sources sync {name}" for name in FAILING]
    assert all("the last sync mark stays" in line for line in done.stderr.splitlines())
    assert '"source": "zammad"' in done.stdout and '"queued": 3' in done.stdout
    assert last_sync(running.conn, "zammad") is not None
    assert [last_sync(running.conn, name) for name in FAILING] == [None] * len(FAILING)

    health = _usm(running, "sources", "synced", "--all", "--within", "600")
    assert health.returncode == 1
    assert health.stderr == (
        "usm sources synced: not within 600 s: "
        + ", ".join(f"{name} (last complete sync: never)" for name in FAILING)
        + "\n"
    )
    assert _usm(running, "sources", "synced", "zammad", "--within", "600").returncode == 0


@pytest.mark.parametrize("running", ZAMMAD, ids=["zammad"], indirect=True)
def test_sync_every_runs_again_after_each_run_until_stopped(running: Running) -> None:
    env = {**os.environ, "USM_TABLES": str(running.tables), **running.env}
    loop = subprocess.Popen(
        [sys.executable, "-c", RUN_CLI, "sources", "sync", "zammad", "--every", "0.2"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        first = wait_for("a first run", lambda: last_sync(running.conn, "zammad"))

        def later() -> datetime | None:
            mark = last_sync(running.conn, "zammad")
            return mark if mark is not None and mark > first else None

        second = wait_for("a second run", later)
        assert first < second <= datetime.now(UTC)
        assert loop.poll() is None
    finally:
        loop.terminate()
        loop.wait(30)
    assert loop.stderr is not None and loop.stderr.read() == b""
