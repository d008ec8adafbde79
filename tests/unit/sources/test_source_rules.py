"""sources.toml is validated with the set: expressions compile, mapped values exist."""

from __future__ import annotations

from pathlib import Path

import pytest

from service.errors import InvalidTables
from service.files.loader import load_set
from tests.fixtures.table_edits import edit


def _problems(directory: Path) -> list[str]:
    with pytest.raises(InvalidTables) as caught:
        load_set(directory)
    return [str(p) for p in caught.value.problems]


def test_a_mapped_value_that_is_not_a_level_names_file_source_field_and_value(
    tmp_path: Path,
) -> None:
    directory = edit(tmp_path, "sources.toml", '"Group" = "group"', '"Group" = "team"')
    assert _problems(directory) == [
        "2026.1/sources.toml: source[0].impact.map.Group: unknown impact level 'team' for tool "
        "value 'Group'; allowed: organisation, department, group, user"
    ]


def test_a_default_that_is_not_a_level_is_refused(tmp_path: Path) -> None:
    directory = edit(tmp_path, "sources.toml", 'default = "normal"', 'default = "medium"')
    assert _problems(directory) == [
        "2026.1/sources.toml: source[0].urgency.default: unknown urgency level 'medium'; "
        "allowed: immediate, high, normal, low"
    ]


def test_an_unknown_call_type_is_refused(tmp_path: Path) -> None:
    directory = edit(tmp_path, "sources.toml", '"Wish" = "wish"', '"Wish" = "dream"')
    assert _problems(directory) == [
        "2026.1/sources.toml: source[0].call_type.map.Wish: unknown call type 'dream' for tool "
        "value 'Wish'; allowed: incident, service_request, change, wish, risk"
    ]


def test_an_expression_that_does_not_compile_is_refused(tmp_path: Path) -> None:
    directory = edit(tmp_path, "sources.toml", 'ticket_id = "ticket.id"', 'ticket_id = "ticket.["')
    (problem,) = _problems(directory)
    assert problem.startswith(
        "2026.1/sources.toml: source[0].ticket_id: JMESPath expression does not compile:"
    )


def test_an_unknown_signature_scheme_lists_the_known_ones(tmp_path: Path) -> None:
    directory = edit(tmp_path, "sources.toml", 'signature = "bearer"', 'signature = "md5"')
    assert _problems(directory) == [
        "2026.1/sources.toml: source[0].signature: unknown signature scheme 'md5'; "
        "allowed: bearer, basic, hmac-sha256, hmac-sha1, glpi"
    ]


def test_a_write_back_priority_must_be_one_of_ours(tmp_path: Path) -> None:
    directory = edit(tmp_path, "sources.toml", 'P5 = "10"', 'P9 = "10"')
    assert _problems(directory) == [
        "2026.1/sources.toml: source[0].writeback.priority.P9: unknown priority 'P9'; "
        "allowed: P1, P2, P3, P4, P5"
    ]


def test_an_unknown_adapter_is_refused(tmp_path: Path) -> None:
    directory = edit(tmp_path, "sources.toml", 'adapter = "rt"', 'adapter = "otrs"')
    assert _problems(directory) == [
        "2026.1/sources.toml: source[0].writeback.adapter: unknown write-back adapter 'otrs'; "
        "allowed: rt, jira, servicenow, zammad, glpi"
    ]


def test_a_state_both_resolved_and_closed_is_refused(tmp_path: Path) -> None:
    directory = edit(
        tmp_path, "sources.toml", 'closed = ["rejected", "deleted"]', 'closed = ["resolved"]'
    )
    assert _problems(directory) == [
        "2026.1/sources.toml: source[0].status: state 'resolved' is listed as both resolved "
        "and closed"
    ]


def test_a_set_without_sources_connects_no_tool(tmp_path: Path) -> None:
    directory = edit(tmp_path, "set.toml", "version", "version")
    (directory / "sources.toml").unlink()
    assert load_set(directory).tables.sources.source == []


def test_secrets_have_no_place_in_the_mapping(tmp_path: Path) -> None:
    directory = edit(
        tmp_path, "sources.toml", 'signature = "bearer"', 'signature = "bearer"\nsecret = "s3"'
    )
    (problem,) = _problems(directory)
    assert problem.startswith("2026.1/sources.toml: source[0].secret: unknown key 'secret'")
