"""``diff_sets``: what changes between two table sets, section by section."""

from __future__ import annotations

from pathlib import Path

from service.files.loader import LoadedSet, load_set
from service.governance.diff import Cell, Change, diff_sets
from tests.fixtures.table_edits import copy_default, replace_in


def test_the_2027_set_changes_two_matrix_cells(set_2026: LoadedSet, set_2027: LoadedSet) -> None:
    diff = diff_sets(set_2026.tables, set_2027.tables, set_2026.hash, set_2027.hash)
    assert diff.matrix == [
        Cell(row="group", col="high", before="P3", after="P2"),
        Cell(row="user", col="normal", before="P4", after="P5"),
    ]


def test_the_2027_set_changes_one_risk_cell(set_2026: LoadedSet, set_2027: LoadedSet) -> None:
    diff = diff_sets(set_2026.tables, set_2027.tables)
    assert diff.risk == [Cell(row="likely", col="imminent", before="high", after="immediate")]


def test_targets_show_durations_as_the_tables_write_them(
    set_2026: LoadedSet, set_2027: LoadedSet
) -> None:
    diff = diff_sets(set_2026.tables, set_2027.tables)
    assert diff.changes["targets"] == [
        Change(key="P2.response", before="PT30M", after="PT20M"),
        Change(key="P3.resolve", before="P2D", after="P1D"),
    ]


def test_an_inserted_routing_rule_is_one_addition_not_a_shifted_list(
    set_2026: LoadedSet, set_2027: LoadedSet
) -> None:
    diff = diff_sets(set_2026.tables, set_2027.tables)
    assert diff.changes["routing"] == [
        Change(key="route[1]", before=None, after="category=privacy -> security")
    ]


def test_added_services_and_changed_fields_are_listed(
    set_2026: LoadedSet, set_2027: LoadedSet
) -> None:
    services = diff_sets(set_2026.tables, set_2027.tables).changes["services"]
    keys = {c.key: (c.before, c.after) for c in services}
    assert keys["payroll.impact_floor"] == ("group", "department")
    assert keys["hr_portal"][0] is None
    assert "team=applications" in (keys["hr_portal"][1] or "")


def test_a_set_compared_with_itself_has_no_changes(set_2026: LoadedSet) -> None:
    diff = diff_sets(set_2026.tables, set_2026.tables)
    assert diff.empty
    assert diff.count == 0


def test_moving_a_routing_rule_is_a_change_because_order_is_meaning(tmp_path: Path) -> None:
    moved = copy_default(tmp_path)
    text = (moved / "routing.toml").read_text()
    security = '[[route]]\ncategory = "security"\nteam = "security"\n'
    replace_in(moved, "routing.toml", security, "")
    (moved / "routing.toml").write_text((moved / "routing.toml").read_text() + "\n" + security)
    assert text != (moved / "routing.toml").read_text()
    old = load_set(copy_default(tmp_path, "base"))
    diff = diff_sets(old.tables, load_set(moved).tables)
    assert [c.before for c in diff.changes["routing"] if c.before] == [
        "category=security -> security"
    ]
    assert [c.after for c in diff.changes["routing"] if c.after] == [
        "category=security -> security"
    ]


def test_a_changed_team_field_is_listed_with_before_and_after(tmp_path: Path) -> None:
    old = load_set(copy_default(tmp_path, "base"))
    new_dir = copy_default(tmp_path)
    replace_in(new_dir, "teams.toml", '\nmode = "pull"', '\nmode = "push"')
    diff = diff_sets(old.tables, load_set(new_dir).tables)
    assert diff.changes == {
        "teams": [Change(key="change_advisory.mode", before="pull", after="push")]
    }


def test_a_changed_source_value_map_is_shown_by_source_and_field(
    tmp_path: Path, set_2026: LoadedSet
) -> None:
    directory = replace_in(copy_default(tmp_path), "sources.toml", '"Group" = "group"', "")
    replace_in(directory, "sources.toml", 'P1 = "90"', 'P1 = "99"')
    changed = load_set(directory)
    diff = diff_sets(set_2026.tables, changed.tables)
    assert [c.key for c in diff.changes["sources"]] == ["rt.impact", "rt.writeback"]
    impact = diff.changes["sources"][0]
    assert impact.before is not None
    assert "Group=group" in impact.before
    assert impact.after is not None
    assert "Group=group" not in impact.after
