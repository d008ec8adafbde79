"""Governance unit fixtures: the two committed versions, and a writable tables directory."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from service.files.loader import LoadedSet, load_set

ROOT = Path(__file__).resolve().parents[3]
TABLES = ROOT / "tables"


@pytest.fixture(scope="session")
def set_2026() -> LoadedSet:
    return load_set(TABLES / "2026.1")


@pytest.fixture(scope="session")
def set_2027() -> LoadedSet:
    return load_set(TABLES / "2027.1")


@pytest.fixture
def tables_copy(tmp_path: Path) -> Path:
    """A writable ``tables/`` holding only 2026.1, to add or break versions in."""
    root = tmp_path / "tables"
    root.mkdir()
    shutil.copytree(TABLES / "2026.1", root / "2026.1")
    return root
