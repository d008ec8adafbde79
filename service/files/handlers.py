"""Which ``python`` handlers a deployment lets its workers run: an allow-list, not the tables.

The tables change by pull request. If a team's ``python`` handler could name any importable
callable, a pull request adding ``notes.py`` beside the tables and pointing a handler at it would
run its code in every worker. So the deployment decides: ``USM_PYTHON_HANDLERS`` lists modules
(of installed packages; a module allows every callable in it and in its submodules) or exact
``module:function`` targets. Empty, the default, allows none. Tables naming anything else are
refused like any invalid table set, and the worker refuses to import it.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from service.core.tables import PythonHandler, TableSet
from service.core.validation import Problem

__all__ = ["SETTING", "PythonHandlers", "handler_problems"]

SETTING = "USM_PYTHON_HANDLERS"
"""The environment variable (``Settings.python_handlers``) holding the allow-list."""


@dataclass(frozen=True)
class PythonHandlers:
    """The allow-list of python handler targets; empty allows none."""

    entries: tuple[str, ...] = ()

    @classmethod
    def parse(cls, text: str) -> PythonHandlers:
        """Entries separated by commas (blanks around them ignored)."""
        return cls(tuple(e.strip() for e in text.split(",") if e.strip()))

    def allows(self, target: str) -> bool:
        """True when ``target`` (``module:function``) is listed, or its module or a parent is."""
        module = target.partition(":")[0]
        return any(
            entry in (target, module) or module.startswith(entry + ".") for entry in self.entries
        )

    def refusal(self, target: str) -> str:
        """Why ``target`` may not run, naming the setting and what it allows."""
        allowed = (
            f"allowed: {', '.join(self.entries)}"
            if self.entries
            else "no python handler is allowed"
        )
        return (
            f"python handler '{target}' is not allowed by this deployment; {allowed} "
            f"({SETTING} lists the modules of installed packages workers may run)"
        )


def handler_problems(
    tables: TableSet, directory: str, allowed: PythonHandlers
) -> Iterator[Problem]:
    """A problem for every team whose ``python`` handler the allow-list does not cover."""
    for i, team in enumerate(tables.teams.team):
        handler = team.handler
        if isinstance(handler, PythonHandler) and not allowed.allows(handler.target):
            yield Problem(
                file=f"{Path(directory).name}/teams.toml",
                key=f"team[{i}].handler.target",
                reason=allowed.refusal(handler.target),
            )
