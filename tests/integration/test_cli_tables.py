"""``usm tables validate`` and ``usm tables schema``, run as the real console script."""

from __future__ import annotations

import subprocess
import sys
from datetime import timedelta
from pathlib import Path

from tests.fixtures.table_edits import copy_default, edit, replace_in
from tests.support.tables import future_copy

ROOT = Path(__file__).resolve().parents[2]
USM = Path(sys.executable).with_name("usm")


def usm(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(USM), *args], cwd=cwd, capture_output=True, text=True, timeout=60, check=False
    )


def test_validate_accepts_the_committed_tables_with_exit_0() -> None:
    result = usm("tables", "validate")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("ok 2026.1 sha256:")
    assert "effective from 2026-01-01T00:00:00+00:00" in result.stdout


def test_validate_lists_every_problem_with_file_key_and_reason_and_exits_1(
    tmp_path: Path,
) -> None:
    directory = edit(tmp_path, "routing.toml", 'team = "security"', 'team = "secops"')
    replace_in(directory, "matrix.toml", '[matrix.user]\nimmediate = "P3"', "[matrix.user]")
    result = usm("tables", "validate", str(tmp_path))
    assert result.returncode == 1
    assert result.stdout == ""
    assert result.stderr.splitlines() == [
        "2026.1/matrix.toml: matrix.user.immediate: "
        "missing cell for impact 'user' and urgency 'immediate'",
        "2026.1/routing.toml: route[0].team: unknown team 'secops'; "
        "allowed: service_desk, infrastructure, applications, security, change_advisory",
        "2 problem(s); the table sets were refused",
    ]


def test_validate_reports_decode_problems_of_several_files_together(tmp_path: Path) -> None:
    directory = edit(tmp_path, "set.toml", 'title = "USM', 'owner = "x"\ntitle = "USM')
    (directory / "teams.toml").unlink()
    result = usm("tables", "validate", str(tmp_path))
    assert result.returncode == 1
    assert result.stderr.splitlines() == [
        "2026.1/set.toml: owner: unknown key 'owner'; "
        "allowed: version, effective_from, title, description, rescore_on_activate",
        "2026.1/teams.toml: (file): missing file",
        "2 problem(s); the table sets were refused",
    ]


def test_validate_refuses_a_version_given_twice(tmp_path: Path) -> None:
    copy_default(tmp_path, "2026.1")
    copy_default(tmp_path, "2026.1b")
    result = usm("tables", "validate", str(tmp_path))
    assert result.returncode == 1
    assert result.stderr.splitlines() == [
        "2026.1b/set.toml: version: duplicate version '2026.1' (also in 2026.1/set.toml)",
        "1 problem(s); the table sets were refused",
    ]


def test_validate_accepts_a_single_version_directory(tmp_path: Path) -> None:
    result = usm("tables", "validate", str(copy_default(tmp_path)))
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("ok 2026.1 ")


def test_validate_refuses_a_missing_directory(tmp_path: Path) -> None:
    result = usm("tables", "validate", str(tmp_path / "nowhere"))
    assert result.returncode == 1
    assert f"{tmp_path / 'nowhere'}: (dir): not a directory" in result.stderr


def test_schema_check_passes_on_the_committed_schemas() -> None:
    result = usm("tables", "schema", "--check")
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""


def test_schema_check_fails_on_a_stale_schema_and_writing_fixes_it(tmp_path: Path) -> None:
    schemas = tmp_path / "schema"
    written = usm("tables", "schema", "--dir", str(schemas))
    assert written.returncode == 0
    assert len(written.stdout.splitlines()) == 9
    (schemas / "matrix.schema.json").write_text('{"title": "old"}\n')
    stale = usm("tables", "schema", "--check", "--dir", str(schemas))
    assert stale.returncode == 1
    assert stale.stderr.splitlines() == [
        f"stale: {schemas / 'matrix.schema.json'} (run `usm tables schema`)"
    ]
    assert usm("tables", "schema", "--dir", str(schemas)).returncode == 0
    assert usm("tables", "schema", "--check", "--dir", str(schemas)).returncode == 0


def test_a_missing_subcommand_is_a_usage_error_with_exit_2() -> None:
    result = usm("tables")
    assert result.returncode == 2
    assert "usage: usm tables" in result.stderr


def test_validate_refuses_tables_in_which_no_set_is_in_force_yet(tmp_path: Path) -> None:
    at = future_copy(tmp_path / "2027.1", in_future=timedelta(days=32))
    result = usm("tables", "validate", str(tmp_path))
    assert result.returncode == 1
    problem, summary = result.stderr.splitlines()
    assert problem.startswith("2027.1/set.toml: effective_from: no table set is in force at ")
    assert problem.endswith(
        f": the earliest, 2027.1, takes effect {at.isoformat()}; "
        "a set never comes into force before its effective_from"
    )
    assert summary == "1 problem(s); the table sets were refused"
