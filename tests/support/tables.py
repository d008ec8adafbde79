"""Table directories for tests that do not test versions: only 2026.1, whatever the date.

``tables/`` holds 2026.1 and 2027.1 (effective 2027-01-01), and the service picks the active set
by the real clock. A test that asserts 2026.1 outcomes against ``tables/`` would start failing on
2027-01-01 for no code reason, so such tests run on a copy holding only 2026.1.
"""

from __future__ import annotations

import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path

__all__ = ["REPO_TABLES", "SINGLE_VERSION", "future_copy", "single_set_tables"]

REPO_TABLES = Path(__file__).resolve().parents[2] / "tables"
"""The committed ``tables/``: every version, so the active one depends on the date."""

SINGLE_VERSION = "2026.1"
"""The worked example the tests' expected outcomes are written against."""


def single_set_tables(root: Path) -> Path:
    """Copy ``tables/2026.1`` (only) to ``root/tables/2026.1``; return ``root/tables``.

    Safe to call again on the same ``root``: an existing copy is reused, so a caller may keep one
    per session (the ``single_set_tables`` fixture in tests/conftest.py does).
    """
    target = root / "tables"
    if not (target / SINGLE_VERSION / "set.toml").is_file():
        shutil.copytree(
            REPO_TABLES / SINGLE_VERSION,
            target / SINGLE_VERSION,
            ignore=shutil.ignore_patterns("__pycache__"),
            dirs_exist_ok=True,
        )
    return target


def future_copy(
    target: Path, version: str = "2027.1", in_future: timedelta = timedelta(days=365)
) -> datetime:
    """Copy ``tables/<version>`` to ``target`` taking effect ``in_future`` from now; return when.

    For version tests that need a set still in the future by the real clock: the committed 2027.1
    takes effect on 2027-01-01, which is in the past from then on.
    """
    at = (datetime.now(UTC) + in_future).replace(microsecond=0)
    shutil.copytree(REPO_TABLES / version, target, ignore=shutil.ignore_patterns("__pycache__"))
    set_toml = target / "set.toml"
    text = set_toml.read_text()
    line = next(x for x in text.splitlines() if x.startswith("effective_from = "))
    set_toml.write_text(text.replace(line, f"effective_from = {at.strftime('%Y-%m-%dT%H:%M:%SZ')}"))
    return at
