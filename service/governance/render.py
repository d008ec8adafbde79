"""The priority matrix for people: a colour-coded HTML page and a markdown table.

Colours run from red (priority level 1) to green (the last level) so the page reads at a glance;
the text in every cell carries the same information for readers who do not see the colours.
"""

from __future__ import annotations

from html import escape

from service.core.tables import Level, PriorityLevel, TableSet
from service.governance.diff import duration
from service.governance.markdown import table

__all__ = ["matrix_html", "matrix_markdown", "priority_colour"]


def _ordered(levels: list[Level]) -> list[Level]:
    return sorted(levels, key=lambda lv: lv.level)


def priority_colour(level: int, levels: int) -> str:
    """Background colour for priority ``level`` of ``levels``: red for 1 through to green."""
    share = 0.0 if levels <= 1 else (level - 1) / (levels - 1)
    return f"hsl({round(share * 120)}, 70%, 78%)"


def _priorities(tables: TableSet) -> dict[str, PriorityLevel]:
    return {p.name: p for p in sorted(tables.levels.priority, key=lambda p: p.level)}


def matrix_markdown(tables: TableSet, table_hash: str = "") -> str:
    """The matrix and the targets as markdown tables."""
    prios = _priorities(tables)
    urgencies = _ordered(tables.levels.urgency)
    rows = []
    for impact in _ordered(tables.levels.impact):
        cells = [f"**{impact.name}**"]
        for urgency in urgencies:
            name = tables.matrix.matrix[impact.name][urgency.name]
            cells.append(f"{name} {prios[name].label}")
        rows.append(cells)
    ident = f" (`{table_hash}`)" if table_hash else ""
    return (
        f"## Priority matrix {tables.version}{ident}, effective from "
        f"{tables.effective_from.isoformat()}\n\n"
        + table(["impact \\ urgency", *(u.name for u in urgencies)], rows)
        + "\n\n### Targets\n\n"
        + table(
            ["priority", "label", "respond within", "resolve within"],
            [[p.name, p.label, duration(p.response), duration(p.resolve)] for p in prios.values()],
        )
        + "\n\n### Risk urgency (likelihood x proximity)\n\n"
        + _risk_markdown(tables)
        + "\n"
    )


def _risk_markdown(tables: TableSet) -> str:
    proximities = _ordered(tables.risk.proximity)
    rows = [
        [f"**{lk.name}**", *(tables.risk.urgency[lk.name][p.name] for p in proximities)]
        for lk in _ordered(tables.risk.likelihood)
    ]
    return table(["likelihood \\ proximity", *(p.name for p in proximities)], rows)


_CSS = """
body { font-family: system-ui, sans-serif; margin: 2rem; color: #1b1b1b; }
table { border-collapse: collapse; margin: 1rem 0 2rem; }
th, td { border: 1px solid #8a8a8a; padding: .5rem .8rem; text-align: center; }
th { background: #f0f0f0; }
th small, td small { display: block; font-weight: normal; color: #444; }
td.p { font-weight: bold; min-width: 6rem; }
"""


def _head(level: Level) -> str:
    return (
        f'<th scope="col" title="{escape(level.description)}">{escape(level.name)}'
        f"<small>level {level.level}</small></th>"
    )


def matrix_html(tables: TableSet, table_hash: str = "") -> str:
    """A standalone HTML page: the matrix coloured by priority, then the targets."""
    prios = _priorities(tables)
    count = len(prios)
    urgencies = _ordered(tables.levels.urgency)
    body = []
    for impact in _ordered(tables.levels.impact):
        cells = [
            f'<th scope="row" title="{escape(impact.description)}">{escape(impact.name)}'
            f"<small>level {impact.level}</small></th>"
        ]
        for urgency in urgencies:
            p = prios[tables.matrix.matrix[impact.name][urgency.name]]
            cells.append(
                f'<td class="p" style="background:{priority_colour(p.level, count)}">'
                f"{escape(p.name)}<small>{escape(p.label)}</small></td>"
            )
        body.append("<tr>" + "".join(cells) + "</tr>")
    targets = "".join(
        f'<tr><td class="p" style="background:{priority_colour(p.level, count)}">'
        f"{escape(p.name)}</td><td>{escape(p.label)}</td><td>{duration(p.response)}</td>"
        f"<td>{duration(p.resolve)}</td><td>{escape(p.description)}</td></tr>"
        for p in prios.values()
    )
    urgency_rank = {u.name: u.level for u in urgencies}
    proximities = _ordered(tables.risk.proximity)
    risk = "".join(
        f'<tr><th scope="row" title="{escape(lk.description)}">{escape(lk.name)}</th>'
        + "".join(
            f'<td style="background:{priority_colour(urgency_rank[u], len(urgencies))}">'
            f"{escape(u)}</td>"
            for u in (tables.risk.urgency[lk.name][p.name] for p in proximities)
        )
        + "</tr>"
        for lk in _ordered(tables.risk.likelihood)
    )
    version = escape(tables.version)
    ident = f" <code>{escape(table_hash)}</code>" if table_hash else ""
    return f"""<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><title>Priority matrix {version}</title><style>{_CSS}</style></head>
<body>
<h1>Priority matrix {version}{ident}</h1>
<p>{escape(tables.set.title)}. Effective from {tables.effective_from.isoformat()}.</p>
<table>
<caption>impact (rows) &times; urgency (columns) → priority</caption>
<tr><th>impact \\ urgency</th>{"".join(_head(u) for u in urgencies)}</tr>
{"".join(body)}
</table>
<h2>Risk urgency</h2>
<p>A risk's urgency follows from its likelihood and proximity, then the matrix above gives its
priority: risks and reactive calls share one scale.</p>
<table>
<tr><th>likelihood \\ proximity</th>{"".join(_head(p) for p in proximities)}</tr>
{risk}
</table>
<h2>Targets</h2>
<table>
<tr><th>priority</th><th>label</th><th>respond within</th><th>resolve within</th><th></th></tr>
{targets}
</table>
</body>
</html>
"""
