"""A :class:`TableDiff` as markdown for a pull request: what a reviewer must agree to."""

from __future__ import annotations

import difflib
import re
from collections.abc import Sequence

from service.core.tables import TableSet
from service.files.loader import LoadedSet
from service.governance.diff import Cell, Change, TableDiff

__all__ = ["diff_markdown", "table", "versions_markdown"]

_TITLES = {
    "set": "Set",
    "impact": "Impact levels",
    "urgency": "Urgency levels",
    "targets": "Targets per priority",
    "call_types": "Call types",
    "risk_levels": "Risk likelihood and proximity levels",
    "services": "Services",
    "teams": "Teams",
    "routing": "Routing (first matching rule wins)",
    "sources": "Source mappings (ticketing tools)",
}


_CELL_MAX = 160


def _esc(text: str) -> str:
    text = " ".join(text.split())
    if len(text) > _CELL_MAX:
        text = text[: _CELL_MAX - 1] + "…"
    return text.replace("|", "\\|")


def table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """A GitHub markdown table."""
    lines = ["| " + " | ".join(_esc(h) for h in header) + " |"]
    lines.append("|" + "|".join("---" for _ in header) + "|")
    lines.extend("| " + " | ".join(_esc(c) for c in row) + " |" for row in rows)
    return "\n".join(lines)


def _was(before: str | None, after: str | None) -> str:
    if before is None:
        return f"**{after}** (new)"
    if after is None:
        return f"~~{before}~~ (removed)"
    return f"~~{before}~~ → **{after}**"


def _grid(
    title: str,
    corner: str,
    grid: dict[str, dict[str, str]],
    rows: Sequence[str],
    cols: Sequence[str],
    cells: Sequence[Cell],
) -> str:
    """The new grid in full, changed cells shown as ``~~old~~ → **new**``."""
    changed = {(c.row, c.col): c for c in cells}
    body = []
    for row in rows:
        line = [f"**{row}**"]
        for col in cols:
            c = changed.get((row, col))
            line.append(_was(c.before, c.after) if c else grid.get(row, {}).get(col, ""))
        body.append(line)
    n = len(cells)
    head = f"### {title}: {n} cell{'s' if n != 1 else ''} change{'s' if n == 1 else ''}"
    return f"{head}\n\n{table([corner, *cols], body)}"


def _long(text: str | None) -> bool:
    """Whether a table cell would cut ``text`` or lose its line breaks."""
    return text is not None and (len(" ".join(text.split())) > _CELL_MAX or "\n" in text.strip())


def _text_diff(change: Change) -> str:
    """The whole of a long text change as a unified diff with every line as context."""
    before = (change.before or "").splitlines()
    after = (change.after or "").splitlines()
    lines = difflib.unified_diff(
        before, after, "before", "after", lineterm="", n=max(len(before), len(after))
    )
    body = "\n".join(lines)
    fence = "`" * max(3, max((len(run) for run in re.findall(r"`+", body)), default=0) + 1)
    return f"`{change.key}` in full:\n\n{fence}diff\n{body}\n{fence}"


def _changes(section: str, changes: Sequence[Change]) -> str:
    rows = []
    texts = []
    for c in changes:
        kind = "added" if c.before is None else "removed" if c.after is None else "changed"
        if _long(c.before) or _long(c.after):
            # A cell holds 160 characters on one line: a long text (a set's changelog paragraph)
            # would be cut to the same prefix on both sides. It is shown whole below instead.
            note = "(long text: in full below)"
            rows.append([f"`{c.key}`", kind, note if c.before else "", note if c.after else ""])
            texts.append(_text_diff(c))
        else:
            rows.append([f"`{c.key}`", kind, c.before or "", c.after or ""])
    out = f"### {_TITLES.get(section, section)}\n\n" + table(["what", "", "before", "after"], rows)
    return "\n\n".join([out, *texts])


def diff_markdown(diff: TableDiff, new: TableSet, title: str | None = None) -> str:
    """The report: identity of both sets, the matrix and risk grids, then every other change."""
    out = [
        f"## {title or 'Table set change'}: {diff.old_version} → {diff.new_version}",
        "",
        table(
            ["", "before", "after"],
            [
                ["version", diff.old_version, diff.new_version],
                ["content hash", f"`{diff.old_hash}`", f"`{diff.new_hash}`"],
            ],
        ),
        "",
    ]
    if diff.empty:
        out.append("No change in meaning: every call is scored exactly as before.")
        return "\n".join(out) + "\n"
    out.append(f"{diff.count} change(s).")
    impacts = [lv.name for lv in sorted(new.levels.impact, key=lambda lv: lv.level)]
    urgencies = [lv.name for lv in sorted(new.levels.urgency, key=lambda lv: lv.level)]
    out += ["", _grid("Priority matrix", "impact \\ urgency", new.matrix.matrix, impacts,
                      urgencies, diff.matrix)]  # fmt: skip
    if diff.risk:
        likes = [lv.name for lv in sorted(new.risk.likelihood, key=lambda lv: lv.level)]
        proxs = [lv.name for lv in sorted(new.risk.proximity, key=lambda lv: lv.level)]
        out += ["", _grid("Risk urgency (likelihood x proximity)", "likelihood \\ proximity",
                          new.risk.urgency, likes, proxs, diff.risk)]  # fmt: skip
    for section, changes in diff.changes.items():
        out += ["", _changes(section, changes)]
    return "\n".join(out) + "\n"


def versions_markdown(old: Sequence[LoadedSet], new: Sequence[LoadedSet]) -> str:
    """Which versions the change adds, removes or edits, with their effective dates."""
    before = {s.version: s for s in old}
    after = {s.version: s for s in new}
    rows = []
    for version in sorted(before.keys() | after.keys()):
        a, b = before.get(version), after.get(version)
        if a is None and b is not None:
            what = "added"
        elif b is None:
            what = "removed"
        else:
            what = "unchanged" if a is not None and a.hash == b.hash else "changed"
        s = b or a
        assert s is not None
        rows.append(
            [
                version,
                s.tables.effective_from.isoformat(),
                what,
                f"`{a.hash}`" if a else "",
                f"`{b.hash}`" if b else "",
            ]
        )
    return (
        "## Table set versions\n\n"
        + table(["version", "effective from", "", "hash before", "hash after"], rows)
        + "\n"
    )
