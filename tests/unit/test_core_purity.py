"""The scoring core imports no framework, no Redis, no metrics library and does no I/O."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

CORE = Path(__file__).resolve().parents[2] / "service" / "core"
FORBIDDEN = {"litestar", "redis", "rq", "prometheus_client", "uvicorn", "granian", "httpx"}
IO_MODULES = {
    "os",
    "io",
    "pathlib",
    "socket",
    "subprocess",
    "shutil",
    "tempfile",
    "time",
    "logging",
}
"""Standard modules that touch the outside world or the clock; ``now`` is always passed in."""
ALLOWED_INTERNAL = {"service.core", "service.errors"}
"""The only parts of the service the core may import: itself and the framework-free errors."""
IO_BUILTINS = {"open", "print", "input", "exec", "eval"}


def _imports(path: Path) -> set[str]:
    modules = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            modules |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            modules.add(node.module)
    return modules


def _roots(path: Path) -> set[str]:
    return {m.split(".")[0] for m in _imports(path)}


MODULES = [*sorted(CORE.glob("*.py")), CORE.parent / "errors.py"]
"""The core's modules and ``service/errors.py``, which the core raises from."""


@pytest.mark.parametrize("path", MODULES, ids=lambda p: p.name)
def test_core_module_imports_no_io_library(path: Path) -> None:
    assert _roots(path) & FORBIDDEN == set()


@pytest.mark.parametrize("path", MODULES, ids=lambda p: p.name)
def test_core_module_imports_no_standard_io_or_clock_module(path: Path) -> None:
    assert _roots(path) & IO_MODULES == set()


@pytest.mark.parametrize("path", MODULES, ids=lambda p: p.name)
def test_core_module_imports_only_the_core_and_the_errors_of_the_service(path: Path) -> None:
    internal = {m for m in _imports(path) if m.split(".")[0] == "service"}
    assert {m for m in internal if not m.startswith(tuple(ALLOWED_INTERNAL))} == set()


@pytest.mark.parametrize("path", MODULES, ids=lambda p: p.name)
def test_core_module_calls_no_io_builtin_and_never_asks_for_the_time(path: Path) -> None:
    tree = ast.parse(path.read_text())
    calls = {
        node.func.id
        for node in ast.walk(tree)
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
    }
    assert calls & IO_BUILTINS == set()
    attributes = {node.attr for node in ast.walk(tree) if isinstance(node, ast.Attribute)}
    assert attributes & {"now", "utcnow", "today"} == set()


def test_core_has_modules_to_check() -> None:
    assert len(MODULES) >= 6
