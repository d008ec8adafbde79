"""Reading the decision log and the source event log back: newest entries, oldest first."""

from __future__ import annotations

import json

import redis

from service.governance.decision_log import read_log
from service.governance.event_log import read_events
from service.governance.keys import DECISION_LOG, SOURCE_EVENTS


def test_the_newest_events_come_back_oldest_first_and_entries_of_another_release_are_skipped(
    redis_client: redis.Redis,
) -> None:
    at = "2026-03-02T09:00:00+00:00"
    for n in range(5):
        payload = json.dumps({"n": n})
        redis_client.xadd(SOURCE_EVENTS, {"source": "jira", "payload": payload, "at": at})
    redis_client.xadd(SOURCE_EVENTS, {"source": "jira", "payload": "{not json", "at": at})
    redis_client.xadd(SOURCE_EVENTS, {"payload": "{}", "at": at})
    redis_client.xadd(SOURCE_EVENTS, {"source": "jira", "payload": "{}", "at": "yesterday"})
    events = read_events(redis_client, 6)
    assert [e.payload for e in events] == [{"n": 2}, {"n": 3}, {"n": 4}]


def test_a_decision_log_entry_without_its_call_is_skipped(redis_client: redis.Redis) -> None:
    fields = {"version": "v1", "hash": "h", "priority": "P2", "team": "t", "at": "2026-03-02"}
    call = json.dumps({"type": "incident", "impact": "user", "urgency": "low"})
    redis_client.xadd(DECISION_LOG, {**fields, "call": call})
    redis_client.xadd(DECISION_LOG, fields)
    logged = read_log(redis_client, 10)
    assert [(d.priority, d.call.type) for d in logged] == [("P2", "incident")]
