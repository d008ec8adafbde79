"""Replay: how many calls the new set would score differently."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from service.core.calls import Call
from service.files.loader import LoadedSet, load_set
from service.governance.replay import Outcome, input_grid, read_calls, replay, replay_markdown
from tests.fixtures.table_edits import copy_default, replace_in

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)


def test_replay_counts_priority_and_team_changes_by_call_type(
    set_2026: LoadedSet, set_2027: LoadedSet
) -> None:
    calls = [
        Call(type="incident", impact="group", urgency="high"),  # P3 -> P2
        Call(type="incident", impact="user", urgency="normal"),  # P4 -> P5
        Call(type="incident", impact="user", urgency="low"),  # unchanged
        Call(type="service_request", impact="user", urgency="low", category="privacy"),  # team
        Call(type="risk", impact="group", likelihood="likely", proximity="imminent"),  # P3 -> P2
    ]
    r = replay(calls, set_2026.scorer(), set_2027.scorer(), NOW)
    assert (r.calls, r.changed, r.priority_changed, r.team_changed, r.refused) == (5, 4, 3, 1, 0)
    assert r.by_call_type["incident"].calls == 3
    assert r.by_call_type["incident"].raised == 1
    assert r.by_call_type["incident"].lowered == 1
    assert r.by_call_type["service_request"].team_changed == 1
    assert r.by_call_type["risk"].raised == 1
    first = r.examples[0]
    assert (first.before, first.after) == (
        Outcome(priority="P3", team="service_desk"),
        Outcome(priority="P2", team="service_desk"),
    )


def test_calls_the_new_set_refuses_are_changes_with_the_reason(
    set_2026: LoadedSet, tmp_path: Path
) -> None:
    smaller = load_set(
        replace_in(
            copy_default(tmp_path),
            "services.toml",
            '[[service]]\nname = "website"\nteam = "applications"\n'
            'description = "Public website."\n',
            "",
        )
    )
    calls = [Call(type="incident", impact="user", urgency="low", service="website")]
    r = replay(calls, set_2026.scorer(), smaller.scorer(), NOW)
    assert (r.changed, r.refused) == (1, 1)
    assert r.examples[0].after is None
    assert (r.examples[0].error or "").startswith("unknown service 'website' - at `$.service`")


def test_calls_the_old_set_refuses_are_skipped_not_counted(
    set_2026: LoadedSet, set_2027: LoadedSet
) -> None:
    calls = [Call(type="incident", impact="user", urgency="low", service="hr_portal")]
    r = replay(calls, set_2026.scorer(), set_2027.scorer(), NOW)
    assert (r.calls, r.skipped, r.changed) == (0, 1, 0)


def test_examples_cover_each_kind_of_change_before_repeating_one(
    set_2026: LoadedSet, set_2027: LoadedSet
) -> None:
    same = [Call(type="incident", impact="group", urgency="high")] * 5
    other = [Call(type="wish", impact="user", urgency="normal")]
    r = replay(same + other, set_2026.scorer(), set_2027.scorer(), NOW, examples=2)
    assert [e.call.type for e in r.examples] == ["incident", "wish"]


def test_the_markdown_report_gives_totals_a_row_per_type_and_examples(
    set_2026: LoadedSet, set_2027: LoadedSet
) -> None:
    calls = [Call(type="incident", impact="group", urgency="high")] * 3
    r = replay(calls, set_2026.scorer(), set_2027.scorer(), NOW)
    text = replay_markdown(r, "`calls.jsonl`")
    assert "3 calls from `calls.jsonl` replayed: **3 would change** (100.0 %)" in text
    assert "| incident | 3 | 3 | 3 | 0 | 0 | 0 |" in text
    assert "| type=incident, impact=group, urgency=high | P3 service_desk | P2 service_desk |" in (
        text
    )


def test_read_calls_accepts_json_lines_an_array_and_a_batch_body(tmp_path: Path) -> None:
    one = {"type": "incident", "impact": "user", "urgency": "low"}
    lines = tmp_path / "calls.jsonl"
    lines.write_text(json.dumps(one) + "\n\n" + json.dumps(one) + "\n")
    array = tmp_path / "calls.json"
    array.write_text(json.dumps([one, one, one]))
    batch = tmp_path / "batch.json"
    batch.write_text(json.dumps({"calls": [one]}, indent=2))
    assert [len(read_calls(p)) for p in (lines, array, batch)] == [2, 3, 1]
    assert read_calls(lines)[0] == Call(type="incident", impact="user", urgency="low")


def test_read_calls_names_the_line_of_a_bad_call(tmp_path: Path) -> None:
    path = tmp_path / "calls.jsonl"
    path.write_text('{"type": "incident"}\n{"type": "incident", "colour": "red"}\n')
    with pytest.raises(ValueError) as exc:
        read_calls(path)
    assert str(exc.value) == f"{path}:2: Object contains unknown field `colour`"


def test_read_calls_names_the_position_in_an_array(tmp_path: Path) -> None:
    path = tmp_path / "calls.json"
    path.write_text('[{"type": "incident"}, {"type": 7}]')
    with pytest.raises(ValueError) as exc:
        read_calls(path)
    assert str(exc.value) == f"{path}: Expected `str`, got `int` - at `$[1].type`"


def test_the_input_grid_covers_every_combination_of_both_sets(
    set_2026: LoadedSet, set_2027: LoadedSet
) -> None:
    grid = input_grid(set_2026.tables, set_2027.tables)
    # 4 reactive types x 4 impacts x 4 urgencies, and risks x 4 impacts x 4 x 4 (likelihood,
    # proximity), each for no service or one of 7 (hr_portal is new) and for no category or
    # one of the 2 routed categories (privacy is new).
    assert len(grid) == (4 * 16 + 1 * 64) * 8 * 3
    assert len(set(grid)) == len(grid)
    assert Call(type="risk", impact="user", likelihood="likely", proximity="imminent") in grid
    r = replay(grid, set_2026.scorer(), set_2027.scorer(), NOW)
    assert r.skipped == len(grid) // 8  # every hr_portal call: 2026.1 does not know it
    assert r.refused == 0
