"""Hot reload from disk: valid sets swap in whole, invalid ones are refused and counted."""

from __future__ import annotations

import logging
import shutil
from datetime import UTC, datetime
from pathlib import Path

import pytest
from prometheus_client import REGISTRY

from service.files.handlers import PythonHandlers
from service.files.loader import load_all
from service.files.store import TableStore
from service.governance.reload import TableReloader, fingerprint
from service.metrics.tables import ReloadResult
from tests.fixtures.table_edits import replace_in

TABLES = Path(__file__).resolve().parents[3] / "tables"


def _reloads(result: ReloadResult) -> float:
    return REGISTRY.get_sample_value("usm_table_reloads_total", {"result": result.value}) or 0.0


def _reloader(root: Path) -> TableReloader:
    return TableReloader(TableStore(load_all(root)), root)


def test_a_new_version_directory_is_loaded_beside_the_old_one(tables_copy: Path) -> None:
    reloader = _reloader(tables_copy)
    shutil.copytree(TABLES / "2027.1", tables_copy / "2027.1")
    before = _reloads(ReloadResult.SUCCESS)
    report = reloader.reload("admin")
    assert report.result is ReloadResult.SUCCESS
    assert report.versions == ["2026.1", "2027.1"]
    assert reloader.store.versions.names() == ["2026.1", "2027.1"]
    assert _reloads(ReloadResult.SUCCESS) == before + 1


def test_an_invalid_set_is_refused_with_its_problems_and_the_running_sets_stay(
    tables_copy: Path,
) -> None:
    reloader = _reloader(tables_copy)
    running = reloader.store.versions
    replace_in(tables_copy / "2026.1", "matrix.toml", 'high = "P3"', 'high = "P9"')
    before = _reloads(ReloadResult.REJECTED)
    report = reloader.reload("sigusr1")
    assert report.result is ReloadResult.REJECTED
    assert report.problems == [
        "2026.1/matrix.toml: matrix.group.high: unknown priority level 'P9'; "
        "allowed: P1, P2, P3, P4, P5"
    ]
    assert reloader.store.versions is running
    assert report.active == "2026.1"
    assert _reloads(ReloadResult.REJECTED) == before + 1


def test_files_that_mean_the_same_are_unchanged_and_swap_nothing(tables_copy: Path) -> None:
    reloader = _reloader(tables_copy)
    running = reloader.store.versions
    path = tables_copy / "2026.1" / "matrix.toml"
    path.write_text("# a comment changes no meaning\n" + path.read_text())
    report = reloader.reload("watch")
    assert report.result is ReloadResult.UNCHANGED
    assert reloader.store.versions is running
    assert reloader.store.generation == 0


def test_poll_reloads_a_changed_file_once_it_held_still_for_one_poll(tables_copy: Path) -> None:
    reloader = _reloader(tables_copy)
    assert reloader.poll() is None
    replace_in(tables_copy / "2026.1", "levels.toml", 'response = "PT30M"', 'response = "PT20M"')
    assert reloader.changed()
    assert reloader.poll() is None  # first look: the change may still be in progress
    report = reloader.poll()
    assert report is not None and report.result is ReloadResult.SUCCESS
    assert reloader.store.active(datetime.now(UTC)).tables.levels.priority[1].response.seconds == (
        20 * 60
    )
    assert reloader.poll() is None


def test_refused_files_are_not_retried_until_they_change_again(tables_copy: Path) -> None:
    reloader = _reloader(tables_copy)
    (tables_copy / "2026.1" / "teams.toml").unlink()
    assert reloader.poll() is None
    first = reloader.poll()
    assert first is not None and first.result is ReloadResult.REJECTED
    assert first.problems == ["2026.1/teams.toml: (file): missing file"]
    assert reloader.poll() is None


def test_fingerprint_sees_added_and_removed_files(tables_copy: Path) -> None:
    before = fingerprint(tables_copy)
    (tables_copy / "README.md").write_text("x")
    assert fingerprint(tables_copy) != before
    (tables_copy / "README.md").unlink()
    assert fingerprint(tables_copy) == before


def test_files_still_being_written_are_not_loaded_half_way(tables_copy: Path) -> None:
    reloader = _reloader(tables_copy)
    shutil.copytree(TABLES / "2027.1", tables_copy / "2027.1")
    assert reloader.poll() is None
    # A checkout goes on writing: the files changed again since the last look.
    replace_in(tables_copy / "2027.1", "levels.toml", 'response = "PT20M"', 'response = "PT25M"')
    assert reloader.poll() is None
    report = reloader.poll()
    assert report is not None and report.result is ReloadResult.SUCCESS
    assert reloader.store.versions.names() == ["2026.1", "2027.1"]


def test_a_future_set_left_alone_is_refused_and_the_set_in_force_stays_until_that_date(
    tables_copy: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # The chaos run: 2026.1 in force, 2027.1 (effective 2027-01-01) beside it, a month before.
    now = [datetime(2026, 11, 30, 12, tzinfo=UTC)]
    shutil.copytree(TABLES / "2027.1", tables_copy / "2027.1")
    reloader = TableReloader(TableStore(load_all(tables_copy)), tables_copy, clock=lambda: now[0])
    running = reloader.store.versions
    shutil.move(tables_copy / "2026.1", tmp_path / "moved-away")
    before = _reloads(ReloadResult.REJECTED)
    with caplog.at_level(logging.ERROR, logger="usm.governance.reload"):
        report = reloader.reload("watch")
    assert report.result is ReloadResult.REJECTED
    assert report.problems == [
        "2027.1/set.toml: effective_from: no table set is in force at 2026-11-30T12:00:00+00:00: "
        "the earliest, 2027.1, takes effect 2027-01-01T00:00:00+00:00; "
        "a set never comes into force before its effective_from"
    ]
    assert (report.active, report.versions) == ("2026.1", ["2026.1", "2027.1"])
    assert reloader.store.versions is running
    assert reloader.store.active(now[0]).version == "2026.1"
    assert _reloads(ReloadResult.REJECTED) == before + 1
    assert [r.getMessage().partition(" force: ")[0] for r in caplog.records] == [
        "tables refused (watch): 1 problem(s); 2026.1 stays in"
    ]
    # On its date the kept 2027.1 takes over by itself, and the same files now load.
    now[0] = datetime(2027, 1, 1, tzinfo=UTC)
    assert reloader.store.active(now[0]).version == "2027.1"
    report = reloader.reload("watch")
    assert (report.result, report.active, report.versions) == (
        ReloadResult.SUCCESS,
        "2027.1",
        ["2027.1"],
    )


def test_a_python_handler_the_deployment_does_not_allow_is_refused_on_reload(
    tables_copy: Path,
) -> None:
    allowed = PythonHandlers(("acme.usm",))
    store = TableStore(load_all(tables_copy))
    reloader = TableReloader(store, tables_copy, python_handlers=allowed)
    running = reloader.store.versions
    teams = tables_copy / "2026.1" / "teams.toml"
    line = 'name = "service_desk"\n'
    teams.write_text(
        teams.read_text().replace(line, f'{line}handler = {{ kind = "python", target = "x:y" }}\n')
    )
    report = reloader.reload("watch")
    assert report.result is ReloadResult.REJECTED
    assert report.problems == [
        "2026.1/teams.toml: team[0].handler.target: python handler 'x:y' is not allowed by this "
        "deployment; allowed: acme.usm (USM_PYTHON_HANDLERS lists the modules of installed "
        "packages workers may run)"
    ]
    assert reloader.store.versions is running
