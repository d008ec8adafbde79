"""The image's builder stage, replayed without Docker: from exactly what the Dockerfile copies.

The builder stage copies a few paths into an empty folder and runs ``pip wheel`` there. This test
does the same in a temporary folder, then installs the wheel apart from the source tree and runs
it the way the final stage does (``usm`` outside the checkout, tables at their own path). It
catches what only the image would show: a file the build needs that is not copied, a module
missing from the wheel (no ``__init__.py``, a data file without package-data), code that reads
files relative to the checkout.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from tests.deploy.support import ROOT, parse_dockerfile


def builder_sources() -> list[str]:
    """Context paths the builder stage copies (COPY without --from, before the first RUN pip)."""
    stage: list[str] = []
    in_builder = False
    for ins in parse_dockerfile(ROOT / "Dockerfile"):
        if ins.keyword == "FROM":
            in_builder = ins.args.split()[-1] == "builder"
        elif in_builder and ins.keyword == "COPY":
            flags, words = ins.flags_and_words()
            if "from" not in flags:
                stage.extend(words[:-1])
    return stage


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    context = tmp_path_factory.mktemp("context")
    for source in builder_sources():
        path = ROOT / source
        if path.is_dir():
            shutil.copytree(path, context / source, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(path, context / source)
    out = tmp_path_factory.mktemp("wheels")
    result = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
         "--wheel-dir", str(out), "."],
        cwd=context, capture_output=True, text=True, timeout=180, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    (built,) = out.glob("*.whl")
    return built


def test_the_builder_stage_copies_the_package_metadata_and_code() -> None:
    assert {"pyproject.toml", "README.md", "service/", "worker/"} <= set(builder_sources())


def test_the_wheel_holds_every_file_of_the_service_and_worker_packages(wheel: Path) -> None:
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
    expected = {
        path.relative_to(ROOT).as_posix()
        for package in ("service", "worker")
        for path in (ROOT / package).rglob("*")
        if path.is_file() and "__pycache__" not in path.parts and path.suffix != ".pyc"
    }
    assert expected - names == set()


def test_the_wheel_declares_the_usm_console_script(wheel: Path) -> None:
    with zipfile.ZipFile(wheel) as archive:
        (entry_points,) = [n for n in archive.namelist() if n.endswith("entry_points.txt")]
        text = archive.read(entry_points).decode()
    assert "usm = service.cli.main:main" in text


def test_the_installed_wheel_runs_outside_the_source_tree(wheel: Path, tmp_path: Path) -> None:
    site = tmp_path / "site"
    install = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(site),
         str(wheel)],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert install.returncode == 0, install.stderr
    tables = tmp_path / "app" / "tables"
    shutil.copytree(ROOT / "tables", tables)
    workdir = tmp_path / "app"
    env = {**os.environ, "PYTHONPATH": str(site), "USM_TABLES": str(tables)}
    # The dependencies come from this venv; the project itself must come from the wheel.
    where = subprocess.run(
        [sys.executable, "-c", "import service, worker; print(service.__file__, worker.__file__)"],
        cwd=workdir, env=env, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert where.returncode == 0, where.stderr
    assert all(path.startswith(str(site)) for path in where.stdout.split())
    validate = subprocess.run(
        [sys.executable, "-m", "service.cli.main", "tables", "validate", str(tables)],
        cwd=workdir, env=env, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert validate.returncode == 0, validate.stdout + validate.stderr
