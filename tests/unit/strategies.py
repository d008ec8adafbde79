"""Hypothesis strategies: calls for the default set, and random valid table sets."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import msgspec
from hypothesis import strategies as st

from service.core.calls import Call
from service.core.sources import SourcesFile
from service.core.tables import (
    Level,
    LevelsFile,
    MatrixFile,
    PriorityLevel,
    RiskFile,
    ServicesFile,
    TableSet,
)

__all__ = ["calls", "grid_sets", "monotone", "numbered_set"]

IMPACTS = ["organisation", "department", "group", "user"]
URGENCIES = ["immediate", "high", "normal", "low"]
LIKELIHOODS = ["almost_certain", "likely", "possible", "unlikely"]
PROXIMITIES = ["imminent", "near", "medium", "distant"]
CALL_TYPES = ["incident", "service_request", "change", "wish", "risk"]
SERVICES = ["workplace", "email", "network", "erp", "payroll", "website"]


def _level(names: list[str]) -> st.SearchStrategy[str | int | None]:
    """A level by name or by rank, sometimes missing, sometimes wrong."""
    return st.one_of(
        st.sampled_from(names),
        st.integers(min_value=0, max_value=len(names) + 1),
        st.none(),
        st.sampled_from(["", "hgih", names[0].upper()]),
    )


def calls(valid_only: bool = False) -> st.SearchStrategy[Call]:
    """Calls for the default set: mostly valid, some with unknown or missing fields."""
    if valid_only:
        return st.builds(
            Call,
            type=st.sampled_from([t for t in CALL_TYPES if t != "risk"]),
            impact=st.sampled_from([*IMPACTS, 1, 2, 3, 4]),
            urgency=st.sampled_from([*URGENCIES, 1, 2, 3, 4]),
            service=st.none() | st.sampled_from(SERVICES),
            category=st.none() | st.sampled_from(["security", "laptop"]),
        )
    return st.builds(
        Call,
        type=st.sampled_from([*CALL_TYPES, "problem"]),
        impact=_level(IMPACTS),
        urgency=_level(URGENCIES),
        likelihood=st.none() | _level(LIKELIHOODS),
        proximity=st.none() | _level(PROXIMITIES),
        service=st.none() | st.sampled_from([*SERVICES, "mail"]),
        category=st.none() | st.sampled_from(["security", "laptop", ""]),
        reported_at=st.none()
        | st.datetimes(
            min_value=datetime(2020, 1, 1), max_value=datetime(2030, 1, 1), timezones=st.just(UTC)
        ),
    )


def monotone(raw: list[list[int]]) -> list[list[int]]:
    """``raw`` made monotone: a cell is never more severe than the cells above and left of it."""
    out: list[list[int]] = []
    for i, row in enumerate(raw):
        new: list[int] = []
        for j, value in enumerate(row):
            above = out[i - 1][j] if i else 0
            left = new[j - 1] if j else 0
            new.append(max(value, above, left))
        out.append(new)
    return out


@st.composite
def grid_sets(draw: st.DrawFn, make_monotone: bool = True) -> list[list[int]]:
    """A rows x columns grid of priority ranks (1 is most severe), every rank 1..k used."""
    rows = draw(st.integers(min_value=1, max_value=5))
    cols = draw(st.integers(min_value=1, max_value=5))
    cell = st.integers(min_value=1, max_value=6)
    row = st.lists(cell, min_size=cols, max_size=cols)
    grid = draw(st.lists(row, min_size=rows, max_size=rows))
    if make_monotone:
        grid = monotone(grid)
    # Renumber so the ranks used are exactly 1..k: every priority level is used.
    used = sorted({v for r in grid for v in r})
    rank = {v: i + 1 for i, v in enumerate(used)}
    return [[rank[v] for v in r] for r in grid]


def numbered_set(base: TableSet, grid: list[list[int]], order: list[int] | None = None) -> TableSet:
    """``base`` with impacts ``i1..``, urgencies ``u1..`` and priorities ``P1..`` from ``grid``.

    ``order`` shuffles the order in which the levels are written, which must not matter: the
    ``level`` numbers, not the file order, rank them. Services and source mappings are dropped
    (their floors and value maps name levels of the base set); the risk table maps onto the new
    urgencies monotonically.
    """
    rows, cols = len(grid), len(grid[0])
    ranks = sorted({v for r in grid for v in r})

    def levels(prefix: str, n: int) -> list[Level]:
        out = [Level(name=f"{prefix}{k}", level=k) for k in range(1, n + 1)]
        if order is not None:
            out.sort(key=lambda lv: order[(lv.level - 1) % len(order)])
        return out

    priorities = [
        PriorityLevel(
            name=f"P{k}",
            level=k,
            label=f"priority {k}",
            response=timedelta(minutes=15 * k),
            resolve=timedelta(hours=4 * k),
        )
        for k in ranks
    ]
    risk = base.risk
    risk_urgency = {
        lk.name: {pr.name: f"u{min(cols, max(lk.level, pr.level))}" for pr in risk.proximity}
        for lk in risk.likelihood
    }
    return msgspec.structs.replace(
        base,
        levels=LevelsFile(impact=levels("i", rows), urgency=levels("u", cols), priority=priorities),
        matrix=MatrixFile(
            matrix={
                f"i{i + 1}": {f"u{j + 1}": f"P{grid[i][j]}" for j in range(cols)}
                for i in range(rows)
            }
        ),
        risk=RiskFile(likelihood=risk.likelihood, proximity=risk.proximity, urgency=risk_urgency),
        services=ServicesFile(service=[]),
        sources=SourcesFile(),
    )
