#!/usr/bin/env python3
"""Build the usm-dispatch Grafana dashboard (dashboards as code, standard library only).

    python deploy/grafana/build.py           # write dashboards/usm-dispatch.json
    python deploy/grafana/build.py --check   # exit 1 when the committed JSON is stale

Every panel query is evaluated against a live service by tests/e2e/test_prometheus_dashboard.py,
so a panel that can never show data fails the tests.

Queue gauges (``usm_queue_*``, ``usm_workers_*``) are reported identically by every API replica:
they are aggregated with ``max by (team, priority)`` first and only then summed across teams or
priorities, so two replicas never double the depth. Event counters come from the process that
saw the event (API or worker) and are summed.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

# A sibling module: this script runs from anywhere as `python deploy/grafana/build.py`.
from widgets import DATASOURCE, Panel, layout, row, stat, timeseries

__all__ = ["build", "main"]

HERE = Path(__file__).resolve().parent
OUT = HERE / "dashboards" / "usm-dispatch.json"

# Per-team panels filter on the dashboard's team variable.
T = 'team="$team"'


def _depth(sel: str = "") -> str:
    return f"max by (team, priority) (usm_queue_depth{{{sel}}})"


def overview() -> list[Panel]:
    """Across all teams: the state of the service at a glance."""
    return [
        row("Overview: all teams"),
        stat(
            "Table set in force",
            "max by (version, hash) (usm_table_info)",
            "{{version}}",
            description="Version of the impact/urgency/priority tables scoring calls now.",
            text_mode="name",
        ),
        stat("Items queued", f"sum({_depth()})", description="Items waiting, all teams."),
        stat(
            "Overdue items",
            "sum(max by (team, priority) (usm_queue_overdue_items))",
            description="Queued items past their response target.",
            red_above=1,
        ),
        stat("Workers up", "sum(max by (team) (usm_workers_up))"),
        stat(
            "Redis",
            "max(usm_redis_up)",
            description="Whether the API reaches Redis (scoring works without it).",
            mappings=[
                {
                    "type": "value",
                    "options": {
                        "0": {"text": "down", "color": "red"},
                        "1": {"text": "up", "color": "green"},
                    },
                }
            ],
        ),
        stat(
            "Decisions / s",
            "sum(rate(usm_decisions_total[$__rate_interval]))",
            unit="reqps",
            description="Calls and risks scored per second, every call type.",
        ),
        timeseries(
            "Queue depth by team",
            [(f"sum by (team) ({_depth()})", "{{team}}")],
            stack=True,
        ),
        timeseries(
            "Oldest item age against response target, by team",
            [
                (
                    "max by (team) (max by (team, priority) (usm_queue_oldest_age_seconds)"
                    " / on (priority) group_left max by (priority)"
                    " (usm_priority_response_target_seconds))",
                    "{{team}}",
                )
            ],
            unit="percentunit",
            description="Age of each team's oldest waiting item as a share of its priority's "
            "response target; above 100% an item is late.",
            threshold=1,
        ),
        timeseries(
            "Overdue items by team",
            [("sum by (team) (max by (team, priority) (usm_queue_overdue_items))", "{{team}}")],
        ),
        timeseries(
            "Throughput by team (completed / s)",
            [("sum by (team) (rate(usm_items_completed_total[$__rate_interval]))", "{{team}}")],
            unit="ops",
        ),
        timeseries(
            "Workers by team",
            [
                ("max by (team) (usm_workers_up)", "{{team}} up"),
                ("max by (team) (usm_workers_busy)", "{{team}} busy"),
            ],
        ),
        timeseries(
            "Dead-lettered items by team",
            [
                (
                    "sum by (team) (increase(usm_items_dead_lettered_total[$__rate_interval]))",
                    "{{team}}",
                )
            ],
            description="Items that failed for good and wait in the dead-letter registry.",
        ),
        timeseries(
            "Decisions by call type and priority",
            [
                (
                    "sum by (call_type, priority) (rate(usm_decisions_total[$__rate_interval]))",
                    "{{call_type}} {{priority}}",
                )
            ],
            unit="reqps",
            stack=True,
        ),
        timeseries(
            "Decisions by table version",
            [
                (
                    "sum by (table_version) (rate(usm_decisions_total[$__rate_interval]))",
                    "{{table_version}}",
                )
            ],
            unit="reqps",
            description="Shows the moment a new table set takes over.",
        ),
        timeseries(
            "API requests by route and status",
            [
                (
                    "sum by (path, method, status_code) "
                    "(rate(usm_http_requests_total[$__rate_interval]))",
                    "{{method}} {{path}} {{status_code}}",
                )
            ],
            unit="reqps",
        ),
        timeseries(
            "API latency p95 by route",
            [
                (
                    "histogram_quantile(0.95, sum by (path, le) "
                    "(rate(usm_http_request_duration_seconds_bucket[$__rate_interval])))",
                    "{{path}}",
                )
            ],
            unit="s",
        ),
        timeseries(
            "Scoring time p95 (per request, excluding HTTP)",
            [
                (
                    "histogram_quantile(0.95, sum by (le) "
                    "(rate(usm_scoring_seconds_bucket[$__rate_interval])))",
                    "p95",
                )
            ],
            unit="s",
        ),
        timeseries(
            "Table reloads by result",
            [
                (
                    "sum by (result) (increase(usm_table_reloads_total[$__rate_interval]))",
                    "{{result}}",
                )
            ],
            description="rejected / error: a change under tables/ was refused; the version in "
            "force stays.",
        ),
    ]


def sources_view() -> list[Panel]:
    """Connected ticketing tools: events coming in, decisions going back."""
    return [
        row("Ticketing tools (sources)"),
        timeseries(
            "Source events by source and outcome",
            [
                (
                    "sum by (source, action) (rate(usm_source_events_total[$__rate_interval]))",
                    "{{source}} {{action}}",
                ),
                (
                    "sum by (source, reason) "
                    "(rate(usm_source_events_refused_total[$__rate_interval]))",
                    "{{source}} refused: {{reason}}",
                ),
            ],
            unit="reqps",
            description="Tickets queued, re-scored, completed ... and refusals by reason "
            "(signature, unmapped, malformed): a tool whose events are refused shows here.",
        ),
        timeseries(
            "Write-backs by source and outcome",
            [
                (
                    "sum by (source, outcome) "
                    "(increase(usm_source_writebacks_total[$__rate_interval]))",
                    "{{source}} {{outcome}}",
                )
            ],
            description="done: the tool shows the current decision; failed: retried with "
            "back-off; dead: gave up (usm sources dead); stale: a newer decision won.",
        ),
        timeseries(
            "Write-backs pending",
            [("max by (source) (usm_source_writebacks_pending)", "{{source}}")],
            description="Decisions waiting to reach their tool; should return to 0 within seconds.",
        ),
        timeseries(
            "Write-back: longest wait",
            [("max by (source) (usm_source_writeback_oldest_seconds)", "{{source}}")],
            unit="s",
            description="How long the longest-waiting write-back has been due: the lag between "
            "a decision and the tool showing it.",
        ),
    ]


def team_view() -> list[Panel]:
    """One team, chosen with the ``team`` variable: what its lead watches all day."""
    return [
        row("Team $team"),
        timeseries(
            "Queue depth by priority",
            [(f"max by (priority) (usm_queue_depth{{{T}}})", "{{priority}}")],
            stack=True,
        ),
        timeseries(
            "Oldest item age against response target",
            [
                (f"max by (priority) (usm_queue_oldest_age_seconds{{{T}}})", "{{priority}} oldest"),
                (
                    "max by (priority) (usm_priority_response_target_seconds)"
                    f" and on (priority) max by (priority) (usm_queue_depth{{{T}}})",
                    "{{priority}} target",
                ),
            ],
            unit="s",
            description="Sidekiq calls the oldest item's age 'latency'. Targets are shown for "
            "the priorities this team has queues for.",
        ),
        timeseries(
            "Wait time p50 / p95 by priority (enqueued to started)",
            [
                (
                    "histogram_quantile(0.5, sum by (priority, le) "
                    f"(rate(usm_item_wait_seconds_bucket{{{T}}}[$__rate_interval])))",
                    "{{priority}} p50",
                ),
                (
                    "histogram_quantile(0.95, sum by (priority, le) "
                    f"(rate(usm_item_wait_seconds_bucket{{{T}}}[$__rate_interval])))",
                    "{{priority}} p95",
                ),
            ],
            unit="s",
        ),
        timeseries(
            "Handling time p95 by priority",
            [
                (
                    "histogram_quantile(0.95, sum by (priority, le) "
                    f"(rate(usm_item_handling_seconds_bucket{{{T}}}[$__rate_interval])))",
                    "{{priority}} p95",
                )
            ],
            unit="s",
        ),
        timeseries(
            "Throughput by priority (completed / s)",
            [
                (
                    f"sum by (priority) (rate(usm_items_completed_total{{{T}}}[$__rate_interval]))",
                    "{{priority}}",
                )
            ],
            unit="ops",
            stack=True,
        ),
        timeseries(
            "Item flow",
            [
                (f"sum(rate(usm_items_{event}_total{{{T}}}[$__rate_interval]))", event)
                for event in ("enqueued", "started", "completed", "failed", "retried")
            ],
            unit="ops",
            description="Items entering the queues, picked up, done, failed and retried.",
        ),
        timeseries(
            "Overdue items by priority",
            [(f"max by (priority) (usm_queue_overdue_items{{{T}}})", "{{priority}}")],
            threshold=1,
        ),
        timeseries(
            "Dead-lettered items by priority",
            [
                (
                    "sum by (priority) "
                    f"(increase(usm_items_dead_lettered_total{{{T}}}[$__rate_interval]))",
                    "{{priority}}",
                )
            ],
        ),
        timeseries(
            "Workers",
            [
                (f"max(usm_workers_up{{{T}}})", "up"),
                (f"max(usm_workers_busy{{{T}}})", "busy"),
            ],
        ),
        timeseries(
            "Longest-running item",
            [(f"max(usm_worker_longest_running_seconds{{{T}}})", "longest running")],
            unit="s",
            description="How long the item a worker has been on longest is taking; a stuck "
            "handler shows here before it times out.",
        ),
    ]


def build() -> dict[str, Any]:
    """The dashboard as Grafana's JSON model."""
    team_query = "label_values(usm_team_info, team)"
    return {
        "uid": "usm-dispatch",
        "title": "usm-dispatch: queues, priorities and decisions",
        "description": "USM unified prioritization and dispatch: team queues by priority, "
        "age against response targets, wait times, workers, decisions and the table set in "
        "force. Built by deploy/grafana/build.py.",
        "tags": ["usm", "dispatch"],
        "editable": True,
        "graphTooltip": 1,
        "schemaVersion": 39,
        "version": 1,
        "time": {"from": "now-6h", "to": "now"},
        "refresh": "30s",
        "timezone": "",
        "annotations": {"list": []},
        "links": [],
        "templating": {
            "list": [
                {
                    "name": "team",
                    "label": "Team",
                    "type": "query",
                    "datasource": DATASOURCE,
                    "definition": team_query,
                    "query": {"query": team_query, "refId": "team"},
                    "refresh": 2,
                    "sort": 1,
                    "includeAll": False,
                    "multi": False,
                    "current": {},
                    "options": [],
                }
            ]
        },
        "panels": layout(overview() + sources_view() + team_view()),
    }


def render() -> str:
    return json.dumps(build(), indent=2) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="fail when the JSON is stale")
    args = parser.parse_args(argv)
    text = render()
    if args.check:
        if not OUT.is_file() or OUT.read_text() != text:
            print(f"{OUT} is stale; run: python deploy/grafana/build.py", file=sys.stderr)
            return 1
        return 0
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(text)
    print(f"wrote {OUT}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
