"""One broken table set per validation rule; each test asserts the exact problem it causes.

Every fixture is the default set with one small edit (``tests.fixtures.table_edits``), so the
edit and the problem it must produce sit side by side.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import msgspec
import pytest

from service.core.sources import SourcesFile
from service.core.tables import CallTypesFile
from service.core.validation import validate
from service.errors import InvalidTables
from service.files.loader import LoadedSet, load_all, load_set
from tests.fixtures.table_edits import copy_default, edit, replace_in

TEAMS = "service_desk, infrastructure, applications, security, change_advisory"
IMPACTS = "organisation, department, group, user"
URGENCIES = "immediate, high, normal, low"
DATETIME_HINT = "write an unquoted TOML date-time with a timezone, e.g. 2026-01-01T00:00:00Z"
DURATION_HINT = (
    "write an ISO 8601 duration in days, hours, minutes or seconds, e.g. PT30M, PT4H, P2D"
)

# rule -> (file, old text, new text, the exact problems, in order)
RULES: dict[str, tuple[str, str, str, list[str]]] = {
    "unknown impact level as a matrix row": (
        "matrix.toml",
        "[matrix.organisation]",
        '[matrix.everyone]\nimmediate = "P1"\n\n[matrix.organisation]',
        [f"matrix.toml: matrix.everyone: unknown impact level 'everyone'; allowed: {IMPACTS}"],
    ),
    "unknown urgency level as a matrix column": (
        "matrix.toml",
        '[matrix.user]\nimmediate = "P3"',
        '[matrix.user]\nurgent = "P3"\nimmediate = "P3"',
        [f"matrix.toml: matrix.user.urgent: unknown urgency level 'urgent'; allowed: {URGENCIES}"],
    ),
    "unknown priority as a matrix value": (
        "matrix.toml",
        '[matrix.user]\nimmediate = "P3"',
        '[matrix.user]\nimmediate = "P0"',
        [
            "matrix.toml: matrix.user.immediate: unknown priority level 'P0'; "
            "allowed: P1, P2, P3, P4, P5"
        ],
    ),
    "unknown urgency level in the risk table": (
        "risk.toml",
        'imminent = "normal"',
        'imminent = "soon"',
        [
            "risk.toml: urgency.unlikely.imminent: unknown urgency level 'soon'; "
            f"allowed: {URGENCIES}"
        ],
    ),
    "unknown proximity level in the risk table": (
        "risk.toml",
        '[urgency.unlikely]\nimminent = "normal"',
        '[urgency.unlikely]\ntomorrow = "high"\nimminent = "normal"',
        [
            "risk.toml: urgency.unlikely.tomorrow: unknown proximity level 'tomorrow'; "
            "allowed: imminent, near, medium, distant"
        ],
    ),
    "unknown impact level as a service floor": (
        "services.toml",
        'impact_floor = "group"',
        'impact_floor = "team"',
        [
            "services.toml: service[4].impact_floor: unknown impact level 'team'; "
            f"allowed: {IMPACTS}"
        ],
    ),
    "missing matrix cell": (
        "matrix.toml",
        'high = "P4"\nnormal = "P4"\nlow = "P5"',
        'high = "P4"\nnormal = "P4"',
        ["matrix.toml: matrix.user.low: missing cell for impact 'user' and urgency 'low'"],
    ),
    "missing risk table row": (
        "risk.toml",
        '[urgency.unlikely]\nimminent = "normal"\nnear = "low"\nmedium = "low"\ndistant = "low"\n',
        "",
        [
            f"risk.toml: urgency.unlikely.{p}: missing cell for likelihood 'unlikely' "
            f"and proximity '{p}'"
            for p in ("imminent", "near", "medium", "distant")
        ],
    ),
    "priority lower when impact rises": (
        "matrix.toml",
        'normal = "P2"\nlow = "P3"',
        'normal = "P2"\nlow = "P5"',
        [
            "matrix.toml: matrix.organisation.low: priority gets lower as impact rises: "
            "department gives P4 but organisation gives P5"
        ],
    ),
    "priority lower when urgency rises": (
        "matrix.toml",
        'high = "P4"\nnormal = "P4"\nlow = "P5"',
        'high = "P5"\nnormal = "P4"\nlow = "P5"',
        [
            "matrix.toml: matrix.user.high: priority gets lower as urgency rises: "
            "normal gives P4 but high gives P5"
        ],
    ),
    "risk urgency lower when likelihood or proximity rises": (
        "risk.toml",
        'imminent = "immediate"',
        'imminent = "normal"',
        [
            "risk.toml: urgency.almost_certain.imminent: urgency gets lower as likelihood rises: "
            "likely gives high but almost_certain gives normal",
            "risk.toml: urgency.almost_certain.imminent: urgency gets lower as proximity rises: "
            "near gives high but imminent gives normal",
        ],
    ),
    "response target that shrinks as priority falls": (
        "levels.toml",
        'response = "PT2H"',
        'response = "PT10M"',
        [
            "levels.toml: priority[2].response: response target shrinks as priority falls: "
            "P3 is shorter than P2"
        ],
    ),
    "resolve target that shrinks as priority falls": (
        "levels.toml",
        'resolve = "P20D"',
        'resolve = "P4D"',
        [
            "levels.toml: priority[4].resolve: resolve target shrinks as priority falls: "
            "P5 is shorter than P4"
        ],
    ),
    "resolve target shorter than the response target": (
        "levels.toml",
        'resolve = "PT4H"',
        'resolve = "PT10M"',
        [
            "levels.toml: priority[0].resolve: "
            "P1: resolve target is shorter than its response target"
        ],
    ),
    "target that is not a positive duration": (
        "levels.toml",
        'response = "PT15M"',
        'response = "PT0S"',
        ["levels.toml: priority[0].response: P1: response target must be a positive duration"],
    ),
    "priority the matrix never gives": (
        "levels.toml",
        'description = "Planned work: scheduled with the customer."',
        'description = "Planned work."\n\n[[priority]]\nname = "P6"\nlevel = 6\n'
        'label = "someday"\nresponse = "P30D"\nresolve = "P90D"',
        ["levels.toml: priority[5]: priority 'P6' is never given by the matrix"],
    ),
    "duplicate level name": (
        "levels.toml",
        'name = "user"',
        'name = "group"',
        [
            "levels.toml: impact[3].name: duplicate name 'group'",
            # The matrix still has a row for 'user', now unknown: both are listed at once.
            "matrix.toml: matrix.user: unknown impact level 'user'; "
            "allowed: organisation, department, group",
            # So does every source that maps a tool value, or defaults, to 'user'.
            "sources.toml: source[0].impact.map.User: unknown impact level 'user' for tool "
            "value 'User'; allowed: organisation, department, group",
            *[
                f"sources.toml: source[{i}].impact.{where}: unknown impact level 'user'"
                f"{tool}; allowed: organisation, department, group"
                for i, where, tool in [
                    (1, "map.Minor / Localized", " for tool value 'Minor / Localized'"),
                    (1, "default", ""),
                    (2, "map.Minor / Localized", " for tool value 'Minor / Localized'"),
                    (2, "default", ""),
                    (3, "map.3", " for tool value '3'"),
                    (4, "default", ""),
                    (5, "map.2", " for tool value '2'"),
                    (5, "map.1", " for tool value '1'"),
                ]
            ],
        ],
    ),
    "duplicate level rank": (
        "risk.toml",
        'name = "unlikely"\nlevel = 4',
        'name = "unlikely"\nlevel = 3',
        ["risk.toml: likelihood[3].level: duplicate level 3"],
    ),
    "unknown team in a route": (
        "routing.toml",
        'team = "security"',
        'team = "secops"',
        [f"routing.toml: route[0].team: unknown team 'secops'; allowed: {TEAMS}"],
    ),
    "unknown default team": (
        "routing.toml",
        'default_team = "service_desk"',
        'default_team = "helpdesk"',
        [f"routing.toml: default_team: unknown team 'helpdesk'; allowed: {TEAMS}"],
    ),
    "unknown team owning a service": (
        "services.toml",
        'team = "service_desk"',
        'team = "nobody"',
        [f"services.toml: service[0].team: unknown team 'nobody'; allowed: {TEAMS}"],
    ),
    "unknown call type in a route": (
        "routing.toml",
        'call_type = "wish"',
        'call_type = "wishes"',
        [
            "routing.toml: route[2].call_type: unknown call type 'wishes'; "
            "allowed: incident, service_request, change, wish, risk"
        ],
    ),
    "unknown service in a route": (
        "routing.toml",
        'call_type = "wish"\nteam = "change_advisory"',
        'call_type = "wish"\nteam = "change_advisory"\n\n[[route]]\nservice = "mail"\n'
        'team = "infrastructure"',
        [
            "routing.toml: route[3].service: unknown service 'mail'; "
            "allowed: workplace, email, network, erp, payroll, website"
        ],
    ),
    "route that matches nothing in particular": (
        "routing.toml",
        'category = "security"\nteam = "security"',
        'team = "security"',
        ["routing.toml: route[0]: a route must match on call_type, service or category"],
    ),
    "duplicate team": (
        "teams.toml",
        'name = "security"',
        'name = "applications"',
        [
            "teams.toml: team[3].name: duplicate team 'applications'",
            "routing.toml: route[0].team: unknown team 'security'; "
            "allowed: service_desk, infrastructure, applications, change_advisory",
        ],
    ),
    "duplicate call type": (
        "call_types.toml",
        'name = "wish"',
        'name = "change"',
        [
            "call_types.toml: call_type[3].name: duplicate call type 'change'",
            "routing.toml: route[2].call_type: unknown call type 'wish'; "
            "allowed: incident, service_request, change, risk",
            "sources.toml: source[0].call_type.map.Wish: unknown call type 'wish' for tool "
            "value 'Wish'; allowed: incident, service_request, change, risk",
        ],
    ),
    "bad duration": (
        "levels.toml",
        'response = "PT15M"',
        'response = "15 minutes"',
        [f"levels.toml: priority[0].response: Invalid ISO8601 duration; {DURATION_HINT}"],
    ),
    "duration in months": (
        "levels.toml",
        'resolve = "P20D"',
        'resolve = "P1M"',
        [
            "levels.toml: priority[4].resolve: Only units 'D', 'H', 'M', and 'S' are supported "
            f"when parsing ISO8601 durations; {DURATION_HINT}"
        ],
    ),
    "effective date without a timezone": (
        "set.toml",
        "effective_from = 2026-01-01T00:00:00Z",
        "effective_from = 2026-01-01T00:00:00",
        [
            "set.toml: effective_from: Expected `datetime` with a timezone component; "
            + DATETIME_HINT
        ],
    ),
    "effective date that is a bare date": (
        "set.toml",
        "effective_from = 2026-01-01T00:00:00Z",
        "effective_from = 2026-01-01",
        ["set.toml: effective_from: Expected `datetime`, got `date`; " + DATETIME_HINT],
    ),
    "effective date written as a string": (
        "set.toml",
        "effective_from = 2026-01-01T00:00:00Z",
        'effective_from = "first of January"',
        ["set.toml: effective_from: Expected `datetime`, got `str`; " + DATETIME_HINT],
    ),
    "unknown key in a file": (
        "set.toml",
        'title = "USM worked example"',
        'title = "USM worked example"\nowner = "governance"',
        [
            "set.toml: owner: unknown key 'owner'; "
            "allowed: version, effective_from, title, description, rescore_on_activate"
        ],
    ),
    "unknown key inside a table": (
        "levels.toml",
        'label = "high"',
        'label = "high"\ncolour = "orange"',
        [
            "levels.toml: priority[1].colour: unknown key 'colour'; "
            "allowed: name, level, label, response, resolve, description"
        ],
    ),
    "unknown handler kind": (
        "teams.toml",
        'by hand."\nmode = "pull"',
        'by hand."\nmode = "pull"\nhandler = { kind = "email" }',
        ["teams.toml: team[4].handler.kind: Invalid value 'email'; allowed: log, webhook, python"],
    ),
    "matrix cell that is not a priority name": (
        "matrix.toml",
        'low = "P4"',
        "low = 4",
        ["matrix.toml: matrix.department.low: Expected `str`, got `int`"],
    ),
    "unknown key in a webhook handler": (
        "teams.toml",
        'by hand."\nmode = "pull"',
        'by hand."\nmode = "pull"\nhandler = { kind = "webhook", url = "https://x", secret = "s" }',
        [
            "teams.toml: team[4].handler.secret: unknown key 'secret'; "
            "allowed: kind, url, secret_env, timeout, retries, backoff"
        ],
    ),
    "value of the wrong type": (
        "levels.toml",
        "level = 2\n",
        'level = "two"\n',
        ["levels.toml: impact[1].level: Expected `int`, got `str`"],
    ),
}


@pytest.mark.parametrize(("file", "old", "new", "problems"), RULES.values(), ids=list(RULES))
def test_a_broken_set_is_refused_with_file_key_and_reason(
    tmp_path: Path, file: str, old: str, new: str, problems: list[str]
) -> None:
    directory = edit(tmp_path, file, old, new)
    with pytest.raises(InvalidTables) as caught:
        load_set(directory)
    assert [str(p) for p in caught.value.problems] == [f"2026.1/{p}" for p in problems]


def test_the_default_set_passes_every_rule(tmp_path: Path) -> None:
    loaded = load_set(copy_default(tmp_path))
    assert loaded.version == "2026.1"


def test_a_doubled_matrix_cell_is_a_decode_problem_with_its_line(tmp_path: Path) -> None:
    directory = copy_default(tmp_path)
    text = (directory / "matrix.toml").read_text().splitlines()
    row = text.index("[matrix.department]")
    text.insert(row + 2, 'immediate = "P2"')
    (directory / "matrix.toml").write_text("\n".join(text) + "\n")
    with pytest.raises(InvalidTables) as caught:
        load_set(directory)
    line, column = row + 3, len('immediate = "P2"') + 1
    assert [str(p) for p in caught.value.problems] == [
        f"2026.1/matrix.toml: line {line}, column {column}: duplicate key: "
        "this value is already set above (Cannot overwrite a value)"
    ]


def test_a_date_that_is_not_a_date_is_a_decode_problem_with_its_line(tmp_path: Path) -> None:
    directory = edit(
        tmp_path, "set.toml", "effective_from = 2026-01-01T00:00:00Z", "effective_from = 2026-13-01"
    )
    with pytest.raises(InvalidTables) as caught:
        load_set(directory)
    (problem,) = caught.value.problems
    assert str(problem).startswith("2026.1/set.toml: line 4, column ")


def test_a_missing_file_is_named(tmp_path: Path) -> None:
    directory = copy_default(tmp_path)
    (directory / "routing.toml").unlink()
    with pytest.raises(InvalidTables) as caught:
        load_set(directory)
    assert [str(p) for p in caught.value.problems] == ["2026.1/routing.toml: (file): missing file"]


def test_a_misspelt_table_file_is_named_not_ignored(tmp_path: Path) -> None:
    directory = copy_default(tmp_path)
    (directory / "routing.toml").rename(directory / "routes.toml")
    (directory / ".#levels.toml").write_text("an editor's lock file is not a table file")
    with pytest.raises(InvalidTables) as caught:
        load_set(directory)
    assert [str(p) for p in caught.value.problems] == [
        "2026.1/routing.toml: (file): missing file",
        "2026.1/routes.toml: (file): unknown table file; allowed: set.toml, levels.toml, "
        "matrix.toml, call_types.toml, risk.toml, services.toml, teams.toml, routing.toml, "
        "sources.toml",
    ]


def test_a_file_that_is_not_utf8_is_named(tmp_path: Path) -> None:
    directory = copy_default(tmp_path)
    (directory / "teams.toml").write_bytes(b"name = \xff\n")
    with pytest.raises(InvalidTables) as caught:
        load_set(directory)
    assert [str(p) for p in caught.value.problems] == [
        "2026.1/teams.toml: (file): not UTF-8 text: byte 7 cannot be decoded"
    ]


def test_problems_in_several_files_are_all_listed_at_once(tmp_path: Path) -> None:
    directory = edit(tmp_path, "set.toml", 'title = "USM', 'colour = "red"\ntitle = "USM')
    replace_in(directory, "levels.toml", 'response = "PT15M"', 'response = "soon"')
    with pytest.raises(InvalidTables) as caught:
        load_set(directory)
    assert [p.file for p in caught.value.problems] == ["2026.1/set.toml", "2026.1/levels.toml"]


def test_whole_set_rules_report_every_problem_together(tmp_path: Path) -> None:
    directory = edit(tmp_path, "routing.toml", 'team = "security"', 'team = "secops"')
    replace_in(directory, "services.toml", 'team = "service_desk"', 'team = "nobody"')
    with pytest.raises(InvalidTables) as caught:
        load_set(directory)
    assert [p.key for p in caught.value.problems] == ["service[0].team", "route[0].team"]


def test_the_same_version_in_two_directories_is_refused(tmp_path: Path) -> None:
    copy_default(tmp_path, "2026.1")
    copy_default(tmp_path, "2026.1-copy")
    with pytest.raises(InvalidTables) as caught:
        load_all(tmp_path)
    assert [str(p) for p in caught.value.problems] == [
        "2026.1-copy/set.toml: version: duplicate version '2026.1' (also in 2026.1/set.toml)"
    ]


def test_two_versions_starting_at_the_same_moment_are_refused(tmp_path: Path) -> None:
    copy_default(tmp_path, "2026.1")
    twin = copy_default(tmp_path, "2026.1-twin")
    replace_in(twin, "set.toml", 'version = "2026.1"', 'version = "2026.2"')
    with pytest.raises(InvalidTables) as caught:
        load_all(tmp_path)
    assert [str(p) for p in caught.value.problems] == [
        "2026.1-twin/set.toml: effective_from: same effective_from as version '2026.1' "
        "(2026-01-01T00:00:00+00:00); each version needs its own moment"
    ]


def test_several_versions_load_oldest_effective_date_first(tmp_path: Path) -> None:
    copy_default(tmp_path, "2026.1")
    later = copy_default(tmp_path, "a-later-one")
    replace_in(later, "set.toml", 'version = "2026.1"', 'version = "2026.2"')
    replace_in(later, "set.toml", "2026-01-01T00:00:00Z", "2026-07-01T00:00:00+02:00")
    assert [s.version for s in load_all(tmp_path)] == ["2026.1", "2026.2"]


def test_a_directory_without_table_sets_is_refused(tmp_path: Path) -> None:
    (tmp_path / "schema").mkdir()
    with pytest.raises(InvalidTables) as caught:
        load_all(tmp_path)
    assert [str(p) for p in caught.value.problems] == [f"{tmp_path}: (dir): no table set found"]


def test_a_path_that_is_not_a_directory_is_refused(tmp_path: Path) -> None:
    with pytest.raises(InvalidTables) as caught:
        load_all(tmp_path / "nowhere")
    assert [str(p) for p in caught.value.problems] == [
        f"{tmp_path / 'nowhere'}: (dir): not a directory"
    ]


def test_a_version_directory_may_be_validated_on_its_own(tmp_path: Path) -> None:
    directory = copy_default(tmp_path)
    shutil.rmtree(directory / "__pycache__", ignore_errors=True)
    assert [s.version for s in load_all(directory)] == ["2026.1"]


def test_an_empty_scale_is_refused(default_set: LoadedSet) -> None:
    tables = default_set.tables
    empty = msgspec.structs.replace(
        tables, risk=msgspec.structs.replace(tables.risk, proximity=[], urgency={})
    )
    # With no proximity there are no cells to miss: the empty scale is the one problem.
    assert [str(p) for p in validate(empty)] == [
        "risk.toml: proximity: at least one level is required"
    ]


def test_a_set_without_call_types_is_refused(default_set: LoadedSet) -> None:
    tables = default_set.tables
    routing = msgspec.structs.replace(tables.routing, route=[])
    # Without sources too: their value maps would name the call types that are gone.
    none = msgspec.structs.replace(
        tables,
        call_types=CallTypesFile(call_type=[]),
        routing=routing,
        sources=SourcesFile(),
    )
    assert [str(p) for p in validate(none)] == [
        "call_types.toml: call_type: at least one call type is required"
    ]
