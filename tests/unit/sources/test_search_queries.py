"""The reconciliation searches' queries: absolute moments, in the zone the tool reads them in."""

from __future__ import annotations

from datetime import UTC, datetime

from service.core.sources import WriteBackSettings
from service.sources.search.jira import jql, user_zone
from service.sources.search.servicenow import encoded_query
from service.sources.search.zammad import search_query

SINCE = datetime(2026, 7, 1, 22, 30, 59, tzinfo=UTC)


def _settings(**fields: str) -> WriteBackSettings:
    return WriteBackSettings(adapter="jira", base_url="https://example.org", fields=fields)


def test_jira_writes_the_moment_in_the_service_accounts_zone_floored_to_the_minute() -> None:
    zone = user_zone({"timeZone": "Europe/Amsterdam"})  # UTC+2 in July: the next day there
    assert jql(_settings(), SINCE, zone) == (
        'updated >= "2026/07/02 00:30" ORDER BY created ASC, key ASC'
    )
    assert jql(_settings(jql="project = SD"), SINCE, zone) == (
        '(project = SD) AND updated >= "2026/07/02 00:30" ORDER BY created ASC, key ASC'
    )


def test_jira_without_a_known_zone_reads_utc() -> None:
    for me in ({}, {"timeZone": ""}, {"timeZone": "Mars/Olympus_Mons"}, [], None):
        assert user_zone(me) is UTC


def test_servicenow_and_zammad_write_the_moment_in_utc() -> None:
    assert encoded_query(_settings(), SINCE) == (
        "sys_updated_on>=javascript:gs.dateGenerate('2026-07-01','22:30:59')^ORDERBYsys_id"
    )
    assert encoded_query(_settings(query="active=true"), SINCE) == (
        "active=true^sys_updated_on>=javascript:gs.dateGenerate('2026-07-01','22:30:59')"
        "^ORDERBYsys_id"
    )
    assert search_query(_settings(), SINCE) == "updated_at:[2026-07-01T22:30:59Z TO *]"
