"""Request Tracker 5, for real: its USM scrip, usm's source endpoint, write-back, reconciliation.

Every expectation is scored by the running service itself (``POST /v1/priority`` with the same
call), so the tests hold whatever table set is in force; waits poll RT or Redis with a deadline.
"""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import msgspec

from service.dispatch.items import Item
from service.dispatch.store import ItemStore
from tests.e2e.rt.conftest import Stack
from tests.support.processes import ROOT, RUN_CLI, wait_for
from tests.support.rt import RtServer
from tests.support.tables import REPO_TABLES

RT_PRIORITY = {"P1": 90, "P2": 70, "P3": 50, "P4": 30, "P5": 10}
"""What tables/*/sources.toml maps our priorities to in RT's numeric Priority."""

WAIT = 60.0
"""Seconds an RT round trip may take on a loaded 2-core machine (usually 1-3 s)."""


def _create(stack: Stack, **fields: str) -> int:
    with stack.rt.client() as rt:
        r = rt.post(
            "/ticket",
            json={"Queue": "General", "Subject": "USM e2e", "CustomFields": fields},
        )
        assert r.status_code == 201, r.text
        return int(r.json()["id"])


def _update(stack: Stack, ticket_id: int, body: dict[str, Any]) -> None:
    with stack.rt.client() as rt:
        rt.put(f"/ticket/{ticket_id}", json=body).raise_for_status()


def _shown(stack: Stack, ticket_id: int) -> dict[str, Any]:
    with stack.rt.client() as rt:
        return RtServer.ticket(rt, ticket_id)


def _expected(stack: Stack, impact: str, urgency: str) -> dict[str, Any]:
    decision: dict[str, Any] = httpx.post(
        f"{stack.api.url}/v1/priority",
        json={"type": "incident", "impact": impact, "urgency": urgency},
        timeout=30,
    ).json()
    return decision


def _item(stack: Stack, ticket_id: int) -> Item | None:
    return ItemStore(stack.redis).find("rt", str(ticket_id))


def _rt_due(decision_resolve_by: str) -> str:
    at = datetime.fromisoformat(decision_resolve_by.replace("Z", "+00:00"))
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _shows(stack: Stack, ticket_id: int, priority: str) -> dict[str, Any] | None:
    """The ticket once it shows ``priority`` in both fields usm writes.

    One REST2 update is several RT transactions (custom fields, then the core fields), so a
    read in between can see the new USM Priority beside the old numeric Priority.
    """
    shown = _shown(stack, ticket_id)
    if shown["cf"].get("USM Priority") != priority or shown["Priority"] != RT_PRIORITY[priority]:
        return None
    return shown


def test_a_new_rt_ticket_gets_its_usm_priority_due_date_and_queued_item(stack: Stack) -> None:
    want = _expected(stack, "group", "high")
    ticket = _create(stack, Impact="Group", Urgency="Seriously impaired")
    p = want["priority"]["name"]
    shown = wait_for(f"RT ticket {ticket} to show {p}", lambda: _shows(stack, ticket, p), WAIT)
    assert shown["Priority"] == RT_PRIORITY[p]
    item = wait_for("the ticket's item", lambda: _item(stack, ticket), WAIT)
    assert item.queue == f"usm.{want['team']}.{p}"
    assert item.state == "queued"
    # Due is resolve_by, counted from the ticket's creation time in RT
    assert shown["Due"] == _rt_due(msgspec.json.encode(item.decision.resolve_by).decode()[1:-1])


def test_changing_the_impact_in_rt_rescores_and_moves_the_item(stack: Stack) -> None:
    ticket = _create(stack, Impact="User", Urgency="Workaround")
    before = _expected(stack, "user", "normal")["priority"]["name"]
    wait_for("the first priority", lambda: _shows(stack, ticket, before), WAIT)
    _update(stack, ticket, {"CustomFields": {"Impact": "Organisation"}})
    want = _expected(stack, "organisation", "normal")
    after = want["priority"]["name"]
    assert after != before
    shown = wait_for(f"RT to show {after}", lambda: _shows(stack, ticket, after), WAIT)
    assert shown["Priority"] == RT_PRIORITY[after]
    item = _item(stack, ticket)
    assert item is not None
    assert item.queue == f"usm.{want['team']}.{after}"
    assert [h.event for h in item.history] == ["enqueued", "rescored"]


def test_resolving_in_rt_completes_the_item(stack: Stack) -> None:
    ticket = _create(stack, Impact="Department", Urgency="Can wait")
    item = wait_for("the ticket's item", lambda: _item(stack, ticket), WAIT)
    _update(stack, ticket, {"Status": "resolved"})

    def completed() -> bool:
        now = ItemStore(stack.redis).get(item.id)
        return now.state == "completed"

    wait_for("the item to be completed", completed, WAIT)


def test_a_ticket_reopened_in_rt_after_it_was_resolved_is_queued_again(stack: Stack) -> None:
    want = _expected(stack, "department", "low")
    p = want["priority"]["name"]
    ticket = _create(stack, Impact="Department", Urgency="Can wait")
    first = wait_for("the ticket's item", lambda: _item(stack, ticket), WAIT)
    _update(stack, ticket, {"Status": "resolved"})
    wait_for(
        "the item to be completed",
        lambda: ItemStore(stack.redis).get(first.id).state == "completed",
        WAIT,
    )
    _update(stack, ticket, {"Status": "open"})
    item = wait_for(
        "a new item for the re-opened ticket",
        lambda: (i := _item(stack, ticket)) and i.id != first.id and i,
        WAIT,
    )
    assert (item.state, item.queue) == ("queued", f"usm.{want['team']}.{p}")
    assert item.payload == {"ticket_id": str(ticket), "reopened_from": first.id}
    # RT shows the new item's decision: its Due counts from the re-opening.
    due = _rt_due(msgspec.json.encode(item.decision.resolve_by).decode()[1:-1])
    shown = wait_for(
        "RT to show the new Due",
        lambda: (t := _shows(stack, ticket, p)) and t["Due"] == due and t,
        WAIT,
    )
    assert shown["Priority"] == RT_PRIORITY[p]
    assert ItemStore(stack.redis).get(first.id).state == "completed"


def test_a_ticket_created_while_usm_was_down_is_prioritised_by_the_sync(stack: Stack) -> None:
    stack.api.stop()
    try:
        ticket = _create(stack, Impact="Organisation", Urgency="Work stopped")
        # The scrip's POST failed: RT shows no USM priority, usm holds no item.
        assert _shown(stack, ticket)["cf"].get("USM Priority") is None
    finally:
        stack.api.start(timeout=60.0)
    assert _item(stack, ticket) is None
    since = (datetime.now(UTC) - timedelta(minutes=10)).isoformat()
    sync = subprocess.run(
        [sys.executable, "-c", RUN_CLI, "sources", "sync", "rt", "--since", since],
        cwd=ROOT,
        env=stack.env,
        capture_output=True,
        check=False,
        timeout=120,
    )
    assert sync.returncode == 0, sync.stderr.decode() + sync.stdout.decode()
    report = msgspec.json.decode(sync.stdout)
    assert report["actions"].get("queued", 0) >= 1
    p = _expected(stack, "organisation", "immediate")["priority"]["name"]
    shown = wait_for(f"write-back of {p}", lambda: _shows(stack, ticket, p), WAIT)
    assert shown["Priority"] == RT_PRIORITY[p]
    assert _item(stack, ticket) is not None
    # Nothing lost, nothing doubled: a second sync finds every ticket already in place.
    again = subprocess.run(
        [sys.executable, "-c", RUN_CLI, "sources", "sync", "rt", "--since", since],
        cwd=ROOT,
        env=stack.env,
        capture_output=True,
        check=False,
        timeout=120,
    )
    assert again.returncode == 0, again.stderr.decode()
    assert "queued" not in msgspec.json.decode(again.stdout)["actions"]


def test_a_response_target_that_passes_unmet_is_shown_in_rt(stack: Stack) -> None:
    want = _expected(stack, "organisation", "immediate")
    p = want["priority"]["name"]
    window = datetime.fromisoformat(want["response_by"]) - datetime.fromisoformat(
        want["reported_at"]
    )
    ticket = _create(stack, Impact="Organisation", Urgency="Work stopped")
    wait_for(f"RT ticket {ticket} to show {p}", lambda: _shows(stack, ticket, p), WAIT)
    # The ticket came from an import: created so long ago that its response target passes in
    # 20 s. usm's API runs no workers here, so nobody takes the item up in time.
    created = datetime.now(UTC).replace(microsecond=0) - window + timedelta(seconds=20)
    stack.rt.backdate(ticket, created)
    _update(stack, ticket, {"Subject": "USM e2e: response target"})
    item = wait_for(
        "the item re-scored from the creation time",
        lambda: (i := _item(stack, ticket)) and i.decision.reported_at == created and i,
        WAIT,
    )
    assert item.decision.response_by == created + window
    missed = wait_for(
        "RT to show the missed response target",
        lambda: (t := _shown(stack, ticket))["cf"].get("USM Missed") == "response" and t,
        WAIT + 20,
    )
    # The write-back carries the whole decision: priority, Due and the USM priority with it.
    assert (missed["Priority"], missed["cf"]["USM Priority"]) == (RT_PRIORITY[p], p)
    assert missed["Due"] == _rt_due(msgspec.json.encode(item.decision.resolve_by).decode()[1:-1])
    assert _item(stack, ticket).state == "queued"  # type: ignore[union-attr]


def test_zz_a_new_table_set_in_force_updates_open_rt_tickets(stack: Stack) -> None:
    # Named zz: it changes the set in force for the rest of this session's stack.
    ticket = _create(stack, Impact="Group", Urgency="Seriously impaired")
    old = _expected(stack, "group", "high")["priority"]["name"]
    wait_for(f"RT to show {old}", lambda: _shows(stack, ticket, old), WAIT)
    # 2027.1 raises group x high (P3 -> P2); bring it into force now, through the file watch.
    target = stack.tables / "2027.1"
    subprocess.run(["cp", "-r", str(REPO_TABLES / "2027.1"), str(target)], check=True)
    rt_url = f"http://127.0.0.1:{stack.rt.port}"
    sources = target / "sources.toml"
    sources.write_text(sources.read_text().replace("http://127.0.0.1:8080", rt_url))
    at = (datetime.now(UTC) - timedelta(seconds=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    set_toml = target / "set.toml"
    set_toml.write_text(
        set_toml.read_text().replace(
            "effective_from = 2027-01-01T00:00:00Z", f"effective_from = {at}"
        )
    )
    new = wait_for(
        "2027.1 in force",
        lambda: (d := _expected(stack, "group", "high"))["table_version"] == "2027.1" and d,
        WAIT,
    )["priority"]["name"]
    assert new != old
    shown = wait_for(f"write-back of {new}", lambda: _shows(stack, ticket, new), WAIT)
    assert shown["Priority"] == RT_PRIORITY[new]
