"""``usm tables diff|replay|render`` as a pull request's CI runs them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from service.cli.main import main

TABLES = Path(__file__).resolve().parents[3] / "tables"


def test_diff_prints_the_markdown_report(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["tables", "diff", str(TABLES / "2026.1"), str(TABLES / "2027.1")]) == 0
    out = capsys.readouterr().out
    assert "## Table set change: 2026.1 → 2027.1" in out
    assert "| **group** | P2 | ~~P3~~ → **P2** | P4 | P5 |" in out


def test_diff_of_two_tables_directories_lists_versions_then_compares_the_newest(
    tables_copy: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["tables", "diff", str(tables_copy), str(TABLES)]) == 0
    out = capsys.readouterr().out
    assert "## Table set versions" in out
    assert "| 2027.1 | 2027-01-01T00:00:00+00:00 | added |" in out
    assert "## Table set change: 2026.1 → 2027.1" in out


def test_diff_as_json_carries_the_changed_cells(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "diff.json"
    args = ["tables", "diff", f"{TABLES}@2026.1", f"{TABLES}@2027.1", "--format", "json"]
    assert main([*args, "-o", str(out)]) == 0
    doc = json.loads(out.read_text())
    assert doc["matrix"][0] == {"row": "group", "col": "high", "before": "P3", "after": "P2"}


def test_diff_of_an_unknown_version_exits_1_naming_the_known_ones(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["tables", "diff", f"{TABLES}@2026.1", f"{TABLES}@2099.1"]) == 1
    assert capsys.readouterr().err == (
        f"error: {TABLES}: no table set version '2099.1'; known: 2026.1, 2027.1, active\n"
    )


def test_diff_of_an_invalid_set_exits_1_listing_its_problems(
    tables_copy: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tables_copy / "2026.1" / "risk.toml").unlink()
    assert main(["tables", "diff", str(TABLES / "2026.1"), str(tables_copy)]) == 1
    assert capsys.readouterr().err == (
        "2026.1/risk.toml: (file): missing file\n1 problem(s); the table sets were refused\n"
    )


def test_replay_reports_changes_for_a_calls_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    calls = tmp_path / "calls.jsonl"
    calls.write_text(
        '{"type": "incident", "impact": "group", "urgency": "high"}\n'
        '{"type": "incident", "impact": "user", "urgency": "low"}\n'
    )
    args = ["tables", "replay", "--calls", str(calls), "--old", f"{TABLES}@2026.1"]
    assert main([*args, "--new", str(TABLES)]) == 0
    out = capsys.readouterr().out
    assert f"2 calls from `{calls}` replayed: **1 would change** (50.0 %)" in out


def test_replay_of_a_bad_calls_file_exits_1_naming_the_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    calls = tmp_path / "calls.jsonl"
    calls.write_text('{"type": "incident"}\nnot json\n')
    assert main(["tables", "replay", "--calls", str(calls), "--new", str(TABLES)]) == 1
    assert capsys.readouterr().err.startswith(f"error: {calls}:2: JSON is malformed")


def test_render_writes_markdown_and_a_colour_coded_page(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    page, md = tmp_path / "matrix.html", tmp_path / "matrix.md"
    args = ["tables", "render", str(TABLES / "2027.1"), "--html", str(page)]
    assert main([*args, "--markdown", str(md)]) == 0
    assert "| **group** | P2 high | P2 high | P4 low | P5 planning |" in md.read_text()
    assert "<h1>Priority matrix 2027.1" in page.read_text()
