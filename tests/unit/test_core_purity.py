"""The scoring core imports no framework, no Redis and no metrics library."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

CORE = Path(__file__).resolve().parents[2] / "service" / "core"
FORBIDDEN = {"litestar", "redis", "rq", "prometheus_client", "uvicorn", "granian", "httpx"}


def _imported_roots(path: Path) -> set[str]:
    roots = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            roots |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            roots.add(node.module.split(".")[0])
    return roots


@pytest.mark.parametrize("path", sorted(CORE.glob("*.py")), ids=lambda p: p.name)
def test_core_module_imports_no_io_library(path: Path) -> None:
    assert _imported_roots(path) & FORBIDDEN == set()


def test_core_has_modules_to_check() -> None:
    assert len(list(CORE.glob("*.py"))) >= 5
