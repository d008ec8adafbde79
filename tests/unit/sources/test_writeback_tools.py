"""The write-back adapters for Jira, ServiceNow, Zammad and GLPI build exactly the tool's API call.

Paths, methods, auth headers and body shapes follow each tool's API documentation (named in the
adapter modules); these tests pin them byte for byte so a change shows up in review.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import msgspec
import pytest

from service.core.decision import Decision, LevelRef, PriorityRef
from service.core.sources import WriteBackSettings
from service.core.tables import Trigger
from service.sources.writeback.base import HttpRequest, adapter

DECISION = Decision(
    call_type="incident",
    workflow="incident",
    trigger=Trigger.REACTIVE,
    priority=PriorityRef(name="P2", level=2, label="high"),
    impact=LevelRef(name="department", level=2),
    urgency=LevelRef(name="high", level=2),
    team="infrastructure",
    reported_at=datetime(2026, 3, 2, 9, 0, tzinfo=UTC),
    response_by=datetime(2026, 3, 2, 9, 30, tzinfo=UTC),
    resolve_by=datetime(2026, 3, 2, 17, 0, tzinfo=UTC),
    table_version="2026.1",
    table_hash="0" * 64,
    explanation=(),
)


def settings(name: str, base_url: str, **extra: Any) -> WriteBackSettings:
    return msgspec.convert({"adapter": name, "base_url": base_url, **extra}, WriteBackSettings)


def wire(request: HttpRequest) -> tuple[str, str, dict[str, str], Any]:
    body = msgspec.json.decode(request.body) if request.body else None
    return request.method, request.url, request.headers, body


JSON = {"Content-Type": "application/json", "Accept": "application/json"}


class TestJira:
    def test_edit_sets_priority_by_name_due_date_and_usm_field(self) -> None:
        s = settings(
            "jira",
            "https://example.atlassian.net/",
            priority={"P2": "High"},
            fields={"usm_priority": "customfield_10060"},
        )
        (request,) = adapter("jira").requests("SD-7", DECISION, s, "svc@example.com:tok")
        assert wire(request) == (
            "PUT",
            "https://example.atlassian.net/rest/api/3/issue/SD-7",
            {**JSON, "Authorization": "Basic c3ZjQGV4YW1wbGUuY29tOnRvaw=="},
            {
                "fields": {
                    "priority": {"name": "High"},
                    "duedate": "2026-03-02",
                    "customfield_10060": "P2",
                }
            },
        )

    def test_data_center_uses_api_2_a_personal_access_token_and_date_time_fields(self) -> None:
        s = settings(
            "jira",
            "https://jira.example.org",
            fields={
                "api": "2",
                "priority": "",
                "due": "",
                "resolve_by": "customfield_1",
                "response_by": "customfield_2",
            },
        )
        (request,) = adapter("jira").requests("OPS-1", DECISION, s, "pat-token")
        assert wire(request) == (
            "PUT",
            "https://jira.example.org/rest/api/2/issue/OPS-1",
            {**JSON, "Authorization": "Bearer pat-token"},
            {
                "fields": {
                    "customfield_1": "2026-03-02T17:00:00.000+0000",
                    "customfield_2": "2026-03-02T09:30:00.000+0000",
                }
            },
        )

    def test_answer_is_the_edit_body(self) -> None:
        s = settings("jira", "https://x.atlassian.net", priority={"P2": "High"})
        assert adapter("jira").answer(DECISION, s) == {
            "fields": {"priority": {"name": "High"}, "duedate": "2026-03-02"}
        }

    def test_an_unmapped_priority_leaves_jiras_priority_alone(self) -> None:
        s = settings("jira", "https://x.atlassian.net", priority={"P1": "Highest"})
        assert adapter("jira").answer(DECISION, s) == {"fields": {"duedate": "2026-03-02"}}


class TestServiceNow:
    def test_table_api_patch_with_usm_fields_in_glide_format(self) -> None:
        s = settings("servicenow", "https://example.service-now.com")
        (request,) = adapter("servicenow").requests(
            "9d385017c611228701d22104cc95c371", DECISION, s, "svc_usm:pw"
        )
        assert wire(request) == (
            "PATCH",
            "https://example.service-now.com/api/now/table/incident/"
            "9d385017c611228701d22104cc95c371",
            {**JSON, "Authorization": "Basic c3ZjX3VzbTpwdw=="},
            {"u_usm_priority": "P2", "due_date": "2026-03-02 17:00:00"},
        )

    def test_priority_and_another_table_when_configured(self) -> None:
        s = settings(
            "servicenow",
            "https://example.service-now.com",
            priority={"P2": "2"},
            fields={"table": "sc_req_item", "priority": "priority", "response_by": "u_respond_by"},
        )
        (request,) = adapter("servicenow").requests("abc", DECISION, s, "oauth-token")
        assert wire(request) == (
            "PATCH",
            "https://example.service-now.com/api/now/table/sc_req_item/abc",
            {**JSON, "Authorization": "Bearer oauth-token"},
            {
                "u_usm_priority": "P2",
                "priority": "2",
                "due_date": "2026-03-02 17:00:00",
                "u_respond_by": "2026-03-02 09:30:00",
            },
        )


class TestZammad:
    def test_ticket_update_with_priority_id_and_usm_attributes(self) -> None:
        s = settings("zammad", "https://zammad.example.com", priority={"P2": "3"})
        (request,) = adapter("zammad").requests("81", DECISION, s, "tok3n")
        assert wire(request) == (
            "PUT",
            "https://zammad.example.com/api/v1/tickets/81",
            {**JSON, "Authorization": "Token token=tok3n"},
            {"priority_id": 3, "usm_priority": "P2", "usm_resolve_by": "2026-03-02T17:00:00Z"},
        )

    def test_priority_by_name(self) -> None:
        s = settings(
            "zammad",
            "https://zammad.example.com",
            priority={"P2": "3 high"},
            fields={"priority": "priority", "usm_priority": "", "resolve_by": ""},
        )
        assert adapter("zammad").answer(DECISION, s) == {"priority": "3 high"}


class TestGlpi:
    def test_session_update_and_logout(self) -> None:
        s = settings("glpi", "https://glpi.example.com/", priority={"P2": "5"})
        requests = adapter("glpi").requests("42", DECISION, s, "app-tok:user-tok")
        assert [wire(r) for r in requests] == [
            (
                "GET",
                "https://glpi.example.com/apirest.php/initSession",
                {"App-Token": "app-tok", "Authorization": "user_token user-tok"},
                None,
            ),
            (
                "PUT",
                "https://glpi.example.com/apirest.php/Ticket/42",
                {
                    "App-Token": "app-tok",
                    "Session-Token": "{session_token}",
                    "Content-Type": "application/json",
                },
                {"input": {"priority": 5, "time_to_resolve": "2026-03-02 17:00:00"}},
            ),
            (
                "GET",
                "https://glpi.example.com/apirest.php/killSession",
                {"App-Token": "app-tok", "Session-Token": "{session_token}"},
                None,
            ),
        ]
        assert [r.capture for r in requests] == [{"session_token": "session_token"}, {}, {}]

    def test_without_app_token(self) -> None:
        s = settings("glpi", "https://glpi.example.com")
        first, update, _ = adapter("glpi").requests("42", DECISION, s, "user-tok")
        assert first.headers == {"Authorization": "user_token user-tok"}
        assert "App-Token" not in update.headers


@pytest.mark.parametrize("name", ["rt", "jira", "servicenow", "zammad", "glpi"])
def test_ticket_ids_cannot_escape_the_path(name: str) -> None:
    s = settings(name, "https://tool.example.com")
    urls = [r.url for r in adapter(name).requests("../../admin?x=1", DECISION, s, "t")]
    assert all("../" not in url and "?" not in url for url in urls)


@pytest.mark.parametrize("offset", [0, 1, -5.5, 14, -12])
def test_the_plain_date_form_is_strftimes_for_any_moment(offset: float) -> None:
    import random
    from datetime import timedelta, timezone

    from service.sources.writeback.common import PLAIN_MOMENT
    from service.sources.writeback.rt import ADAPTER as RT

    zone = timezone(timedelta(hours=offset))
    rng = random.Random(offset)
    moments = [datetime(1, 1, 1, tzinfo=UTC), datetime(999, 12, 31, 23, 59, 59, tzinfo=UTC)]
    moments += [datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC)]
    moments += [
        datetime(1000, 1, 1, tzinfo=UTC) + timedelta(seconds=rng.randrange(280_000_000_000))
        for _ in range(2000)
    ]
    for moment in moments:
        try:
            local = moment.astimezone(zone)
        except OverflowError:
            continue
        assert RT.when(local) == local.astimezone(UTC).strftime(PLAIN_MOMENT), local
