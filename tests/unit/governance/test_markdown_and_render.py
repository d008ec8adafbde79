"""The diff as a pull request comment, and the matrix rendered for people."""

from __future__ import annotations

import re

import msgspec.structs

from service.files.loader import LoadedSet
from service.governance.diff import diff_sets
from service.governance.markdown import diff_markdown, table, versions_markdown
from service.governance.render import matrix_html, matrix_markdown, priority_colour


def test_the_diff_report_marks_changed_cells_inside_the_full_matrix(
    set_2026: LoadedSet, set_2027: LoadedSet
) -> None:
    diff = diff_sets(set_2026.tables, set_2027.tables, set_2026.hash, set_2027.hash)
    text = diff_markdown(diff, set_2027.tables)
    assert text.startswith("## Table set change: 2026.1 → 2027.1\n")
    assert "### Priority matrix: 2 cells change\n" in text
    assert "| **group** | P2 | ~~P3~~ → **P2** | P4 | P5 |" in text
    assert "| **user** | P3 | P4 | ~~P4~~ → **P5** | P5 |" in text
    assert "| `P2.response` | changed | PT30M | PT20M |" in text
    assert f"`{set_2027.hash}`" in text


def test_a_changed_long_description_is_shown_whole_as_a_text_diff(
    set_2026: LoadedSet, set_2027: LoadedSet
) -> None:
    diff = diff_sets(set_2026.tables, set_2027.tables)
    text = diff_markdown(diff, set_2027.tables)
    note = "(long text: in full below)"
    assert f"| `description` | changed | {note} | {note} |" in text
    block = text[text.index("`description` in full:\n\n```diff\n") :]
    block = block[: block.index("\n```\n", 20)]
    old_lines = set_2026.tables.set.description.splitlines()
    new_lines = set_2027.tables.set.description.splitlines()
    added = new_lines[len(old_lines) :]
    assert "+Changes from 2026.1, agreed in the 2027 service agreements:" in block.splitlines()
    assert [f"+{line}" for line in added] == [
        line for line in block.splitlines() if line.startswith("+") and line != "+++ after"
    ]
    assert [f" {line}" for line in old_lines] == [
        line for line in block.splitlines() if line.startswith(" ")
    ]
    assert "…" not in text


def test_a_long_text_that_is_added_is_shown_whole_too(set_2026: LoadedSet) -> None:
    new = set_2026.tables
    longer = msgspec.structs.replace(
        new.set, description="First line.\n" + "word " * 60 + "\nLast line."
    )
    diff = diff_sets(
        msgspec.structs.replace(new, set=msgspec.structs.replace(new.set, description="")),
        msgspec.structs.replace(new, set=longer),
    )
    text = diff_markdown(diff, new)
    assert "+First line." in text and "+Last line." in text


def test_a_diff_without_changes_says_every_call_scores_as_before(set_2026: LoadedSet) -> None:
    diff = diff_sets(set_2026.tables, set_2026.tables)
    text = diff_markdown(diff, set_2026.tables)
    assert "No change in meaning: every call is scored exactly as before." in text
    assert "Priority matrix" not in text


def test_versions_table_says_which_versions_a_change_adds(
    set_2026: LoadedSet, set_2027: LoadedSet
) -> None:
    text = versions_markdown([set_2026], [set_2026, set_2027])
    assert f"| 2026.1 | 2026-01-01T00:00:00+00:00 | unchanged | `{set_2026.hash}` |" in text
    assert f"| 2027.1 | 2027-01-01T00:00:00+00:00 | added |  | `{set_2027.hash}` |" in text


def test_table_cells_escape_pipes_and_fold_newlines() -> None:
    assert table(["a"], [["x|y\nz"]]) == "| a |\n|---|\n| x\\|y z |"


def test_the_matrix_markdown_names_each_priority_with_its_label(set_2026: LoadedSet) -> None:
    text = matrix_markdown(set_2026.tables, set_2026.hash)
    assert "| impact \\ urgency | immediate | high | normal | low |" in text
    assert "| **organisation** | P1 critical | P1 critical | P2 high | P3 normal |" in text
    assert "| P5 | planning | P2D | P20D |" in text


def test_priority_colours_run_from_red_for_the_first_level_to_green_for_the_last() -> None:
    assert priority_colour(1, 5) == "hsl(0, 70%, 78%)"
    assert priority_colour(3, 5) == "hsl(60, 70%, 78%)"
    assert priority_colour(5, 5) == "hsl(120, 70%, 78%)"
    assert priority_colour(1, 1) == "hsl(0, 70%, 78%)"


def test_the_html_page_colours_every_matrix_cell_by_its_priority(set_2026: LoadedSet) -> None:
    page = matrix_html(set_2026.tables, set_2026.hash)
    assert page.startswith("<!doctype html>")
    cells = re.findall(r'<td class="p" style="background:([^"]+)">(P\d)<', page)
    # 16 matrix cells and 5 target rows, each coloured by its own priority.
    assert len(cells) == 16 + 5
    for colour, name in cells:
        assert colour == priority_colour(int(name[1:]), 5)
    assert "Work has stopped" in page  # level descriptions as tooltips


def test_the_risk_table_is_rendered_on_the_same_colour_scale(set_2027: LoadedSet) -> None:
    text = matrix_markdown(set_2027.tables)
    assert "| **likely** | immediate | high | normal | low |" in text
    page = matrix_html(set_2027.tables)
    risk = page[page.index("<h2>Risk urgency</h2>") : page.index("<h2>Targets</h2>")]
    cells = re.findall(r'<td style="background:([^"]+)">([a-z]+)</td>', risk)
    assert len(cells) == 16
    rank = {"immediate": 1, "high": 2, "normal": 3, "low": 4}
    assert all(colour == priority_colour(rank[name], 4) for colour, name in cells)
