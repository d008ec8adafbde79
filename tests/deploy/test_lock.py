"""Every install comes from uv.lock: scripts/dev, CI and the image; a stale lock fails the run.

uv is the one used by ``scripts/dev`` (``.tools/uv``, pinned there), or ``$UV``. The matching lock
is checked offline (nothing to resolve). The stale one is checked as ``scripts/dev test`` checks
it, with the registry at hand: uv re-resolves the changed project, and offline that needs
metadata only a warm cache holds (on a fresh machine it failed with "No solution found ... the
network was disabled" instead of naming the stale lock).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

from tests.deploy.support import ROOT, parse_dockerfile

DEV = ROOT / "scripts" / "dev"


def uv() -> str:
    """The uv binary ``scripts/dev`` installs (or the one named by ``$UV`` / on PATH)."""
    for candidate in (os.environ.get("UV"), str(ROOT / ".tools" / "uv" / "bin" / "uv")):
        if candidate and Path(candidate).is_file():
            return candidate
    found = shutil.which("uv")
    assert found, "uv not found: `scripts/dev test` installs it into .tools/uv"
    return found


def pinned_uv_version() -> str:
    (version,) = re.findall(r"^UV_VERSION=(\S+)$", DEV.read_text(), re.M)
    return version


def lock_check(project: Path, offline: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [uv(), "lock", "--check", *(["--offline"] if offline else []), "--project", str(project)],
        capture_output=True, text=True, timeout=120, check=False,
        env={**os.environ, "UV_PYTHON_DOWNLOADS": "never"},
    )  # fmt: skip


def test_the_lock_matches_pyproject() -> None:
    result = lock_check(ROOT)
    assert result.returncode == 0, result.stderr


def test_a_lock_that_no_longer_matches_pyproject_fails_the_check(tmp_path: Path) -> None:
    pyproject = (ROOT / "pyproject.toml").read_text()
    assert '    "httptools>=0.6",\n' in pyproject
    (tmp_path / "pyproject.toml").write_text(pyproject.replace('    "httptools>=0.6",\n', ""))
    shutil.copy(ROOT / "uv.lock", tmp_path / "uv.lock")
    result = lock_check(tmp_path, offline=False)
    assert result.returncode != 0
    assert "needs to be updated" in result.stderr


def test_scripts_dev_installs_from_the_lock_and_checks_it() -> None:
    text = DEV.read_text()
    syncs = re.findall(r'"\$UV" sync ([^\n]*)', text)
    assert syncs == ['--locked --quiet "$@"']
    assert '"$UV" lock --check' in text
    assert "pip install -e" not in text


def test_the_image_installs_from_the_lock_with_the_same_uv(tmp_path: Path) -> None:
    builder: list[str] = []
    copied: list[str] = []
    in_builder = False
    for ins in parse_dockerfile(ROOT / "Dockerfile"):
        if ins.keyword == "FROM":
            in_builder = ins.args.split()[-1] == "builder"
        elif in_builder and ins.keyword == "RUN":
            builder.append(ins.args)
        elif in_builder and ins.keyword == "COPY":
            copied.extend(ins.flags_and_words()[1][:-1])
    assert "uv.lock" in copied
    assert f"pip install uv=={pinned_uv_version()}" in builder
    (sync,) = [run for run in builder if "uv sync" in run]
    assert "--locked" in sync and "--no-editable" in sync
    assert not [run for run in builder if re.search(r"pip install (?!uv==)", run)]
