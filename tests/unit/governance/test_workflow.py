"""``.github/workflows/tables.yml``: valid for GitHub, and its steps work on a real change."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[3]
WORKFLOW = ROOT / ".github" / "workflows" / "tables.yml"
BIN = Path(sys.executable).parent


def _check(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(BIN / "check-jsonschema"), "--builtin-schema", "vendor.github-workflows", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def _workflow() -> dict[Any, Any]:
    doc: dict[Any, Any] = yaml.safe_load(WORKFLOW.read_text())
    return doc


def test_the_workflow_passes_the_github_workflow_schema() -> None:
    result = _check(WORKFLOW)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "ok -- validation done" in result.stdout


def test_the_schema_check_fails_a_workflow_with_a_misspelt_key(tmp_path: Path) -> None:
    broken = tmp_path / "tables.yml"
    broken.write_text(WORKFLOW.read_text().replace("runs-on:", "run-on:"))
    result = _check(broken)
    assert result.returncode == 1
    assert "Schema validation errors were encountered" in result.stdout + result.stderr


def test_the_workflow_runs_on_pull_requests_that_touch_tables() -> None:
    # PyYAML reads the bare key `on` as True (YAML 1.1); GitHub reads it as "on".
    triggers = _workflow()[True]
    assert "tables/**" in triggers["pull_request"]["paths"]


@pytest.mark.timeout(120)
def test_the_run_steps_publish_validation_diff_and_replay_as_the_job_summary(
    tmp_path: Path,
) -> None:
    """Run every ``run:`` step (not the install) in a checkout where a PR adds 2027.1."""
    shutil.copytree(ROOT / "tables", tmp_path / "tables")
    (tmp_path / "base" / "tables").mkdir(parents=True)
    shutil.copytree(ROOT / "tables" / "2026.1", tmp_path / "base" / "tables" / "2026.1")
    shutil.copytree(ROOT / "tables" / "schema", tmp_path / "base" / "tables" / "schema")
    (tmp_path / "docs" / "examples").mkdir(parents=True)
    shutil.copy(ROOT / "docs" / "examples" / "calls.jsonl", tmp_path / "docs" / "examples")
    summary = tmp_path / "summary.md"
    env = {
        **os.environ,
        "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}",
        "GITHUB_STEP_SUMMARY": str(summary),
        "USM_DECISION_LOG_URL": "",
    }
    steps = _workflow()["jobs"]["review"]["steps"]
    ran = []
    for step in steps:
        if "run" not in step or step.get("name") == "Install usm-dispatch":
            continue
        result = subprocess.run(
            ["bash", "-e", "-c", step["run"]],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert result.returncode == 0, f"{step['name']}: {result.stderr}"
        ran.append(step["name"])
    assert len(ran) == 5
    text = summary.read_text()
    assert "## Validation" in text
    assert "ok 2027.1" in text
    assert "| 2027.1 | 2027-01-01T00:00:00+00:00 | added |" in text
    assert "### Priority matrix: 2 cells change" in text
    assert "## Replay: 2026.1 → 2027.1" in text
    assert "500 calls from `docs/examples/calls.jsonl` replayed" in text
    assert "calls from every input combination" in text
    assert (tmp_path / "review" / "matrix.html").is_file()


def test_a_refused_table_set_fails_the_validate_step(tmp_path: Path) -> None:
    shutil.copytree(ROOT / "tables", tmp_path / "tables")
    (tmp_path / "tables" / "2027.1" / "matrix.toml").write_text("[matrix.group]\nhigh = 3\n")
    step = next(s for s in _workflow()["jobs"]["review"]["steps"] if s.get("name") == "Validate")
    summary = tmp_path / "summary.md"
    result = subprocess.run(
        ["bash", "-e", "-c", step["run"]],
        cwd=tmp_path,
        env={
            **os.environ,
            "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}",
            "GITHUB_STEP_SUMMARY": str(summary),
        },
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 1
    assert summary.read_text() == (
        "## Validation\n\n```\n"
        "2027.1/matrix.toml: matrix.group.high: Expected `str`, got `int`\n"
        "1 problem(s); the table sets were refused\n"
        "```\n"
    )
